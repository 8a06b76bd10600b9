//! Sending records: forwards, dead letters and the outbox's follow-up
//! events, each waited for until the broker acknowledges it.

use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use uuid::Uuid;

use super::engine::Engine;
use super::{Handler, LOG_TARGET};
use crate::contract::headers::{self, Headers};

fn owned_headers(headers: &Headers) -> OwnedHeaders {
    headers.iter().fold(
        OwnedHeaders::new_with_capacity(headers.len()),
        |acc, (k, v)| {
            acc.insert(Header {
                key: k,
                value: Some(v.as_slice()),
            })
        },
    )
}

impl<H: Handler> Engine<'_, H> {
    /// Sends one record and waits for the broker's acknowledgement, trying
    /// again until it comes or the worker shuts down (`None`).
    pub(super) async fn send(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        headers: &Headers,
    ) -> Option<()> {
        let mut backoff = Duration::from_millis(200);
        loop {
            let mut record = FutureRecord::<[u8], [u8]>::to(topic).headers(owned_headers(headers));
            if let Some(k) = key {
                record = record.key(k);
            }
            if let Some(p) = payload {
                record = record.payload(p);
            }
            match self
                .shared
                .producer
                .send(record, Duration::from_secs(5))
                .await
            {
                Ok(_) => return Some(()),
                Err((e, _)) => {
                    tracing::warn!(target: LOG_TARGET, worker = self.name, topic, error = %e, "send not acknowledged; trying again (the source offset stays put)");
                }
            }
            if *self.shared.shutdown.borrow() {
                return None;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    /// Sends the follow-up events still in the outbox: those of `event_id`,
    /// or at start every unsent one this worker left behind.
    pub(super) async fn flush_outbox(&self, event_id: Option<Uuid>) -> Option<()> {
        let Some(store) = self.shared.store.as_ref() else {
            return Some(());
        };
        let mut backoff = Duration::from_millis(200);
        let pending = loop {
            match store.unsent(self.name, event_id).await {
                Ok(rows) => break rows,
                Err(e) => {
                    tracing::warn!(target: LOG_TARGET, worker = self.name, error = %e, "cannot read the outbox; trying again");
                    if *self.shared.shutdown.borrow() {
                        return None;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        };
        for row in pending {
            let headers = vec![(
                headers::CORRELATION_ID.to_owned(),
                row.correlation_id.clone().into_bytes(),
            )];
            self.send(
                &row.topic,
                row.key.as_deref().map(str::as_bytes),
                Some(row.payload.as_bytes()),
                &headers,
            )
            .await?;
            // A crash here sends the event again on the next delivery; its
            // event id lets the consumer drop the repeat.
            if let Err(e) = store.mark_sent(&row.id).await {
                tracing::warn!(target: LOG_TARGET, worker = self.name, error = %e, "cannot mark an outbox row sent; it may be sent again");
            }
        }
        Some(())
    }
}
