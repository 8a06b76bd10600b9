//! `webhook-gateway` (the seed's WebhookController): the HTTP intake for
//! payment provider webhooks. It checks a request's shape, publishes the
//! raw body to `smm.payment.webhooks`, and answers 200 only once the broker
//! has it, so the provider resends anything the panel did not keep.
//!
//! The signature is checked by the `webhooks` worker, not here: a webhook
//! that fails it is kept in the DLQ with the reason for a person to see,
//! instead of vanishing with a 4xx the provider may never report.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;
use tokio::sync::watch;

use crate::contract::catalog;
use crate::contract::events::{Envelope, Event, PaymentWebhookReceived, deterministic_event_id};
use crate::contract::headers;
use crate::providers::cryptomus;

/// Cryptomus bodies are a few hundred bytes; anything near this is not one.
const MAX_BODY: usize = 64 * 1024;

#[derive(Clone)]
struct Gateway {
    producer: FutureProducer,
    topic: String,
}

fn bad_request(reason: String) -> (StatusCode, axum::Json<serde_json::Value>) {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({ "state": 1, "error": reason })),
    )
}

/// The record the gateway stores for a Cryptomus webhook `body`, keyed by
/// its payment uuid. The same body sent twice is the same webhook: one
/// event id.
pub fn received_webhook(body: &str, correlation_id: &str, remote_addr: Option<String>) -> Envelope {
    let received = PaymentWebhookReceived {
        provider: "cryptomus".into(),
        received_at: jiff::Timestamp::now(),
        body: body.to_owned(),
        remote_addr,
    };
    let event_id = deterministic_event_id("cryptomus-webhook", body);
    Envelope::new(Event::from(received), correlation_id.to_owned()).with_event_id(event_id)
}

async fn cryptomus_webhook(
    State(gateway): State<Gateway>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request_headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let Ok(text) = std::str::from_utf8(&body) else {
        return bad_request("the body is not UTF-8".into());
    };
    let fields = match cryptomus::parse(text) {
        Ok(f) => f,
        Err(e) => return bad_request(e.to_string()),
    };
    for required in ["uuid", "sign", "status"] {
        if !fields
            .get(required)
            .is_some_and(serde_json::Value::is_string)
        {
            return bad_request(format!("the field `{required}` is missing or not a string"));
        }
    }
    let payment_uuid = fields
        .get("uuid")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default();
    let correlation_id = request_headers
        .get(headers::CORRELATION_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.trim().is_empty() && v.len() <= 200)
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    let envelope = received_webhook(text, &correlation_id, Some(peer.ip().to_string()));
    let payload = envelope.to_json();
    let record = FutureRecord::to(&gateway.topic)
        .key(payment_uuid)
        .payload(&payload)
        .headers(OwnedHeaders::new().insert(Header {
            key: headers::CORRELATION_ID,
            value: Some(correlation_id.as_bytes()),
        }));
    match gateway.producer.send(record, Duration::from_secs(10)).await {
        Ok(_) => {
            tracing::info!(payment = payment_uuid, correlation_id = %correlation_id, "webhook accepted");
            (StatusCode::OK, axum::Json(json!({ "state": 0 })))
        }
        Err((e, _)) => {
            tracing::error!(payment = payment_uuid, error = %e, "webhook not stored; answering 503 so the provider resends");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({ "state": 1, "error": "temporarily unavailable, retry" })),
            )
        }
    }
}

/// Serves `POST /webhooks/cryptomus` until shutdown. Binds first, so a
/// taken port fails the start.
pub async fn serve(
    addr: SocketAddr,
    producer: FutureProducer,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let app = Router::new()
        .route("/webhooks/cryptomus", post(cryptomus_webhook))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(Gateway {
            producer,
            topic: catalog::PAYMENT_WEBHOOKS.to_owned(),
        });
    tracing::info!(%addr, "webhook gateway listening");
    Ok(tokio::spawn(async move {
        let stop = async move {
            let _ = shutdown.wait_for(|down| *down).await;
        };
        let service = app.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(e) = axum::serve(listener, service)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::error!(error = %e, "the webhook gateway stopped");
        }
    }))
}
