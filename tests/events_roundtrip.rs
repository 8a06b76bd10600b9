//! Every event type survives a trip through a real topic byte for byte.

mod common;

use std::time::{Duration, Instant};

use common::*;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use smm_workers::contract::events::{EVENT_TYPES, Envelope, Event};

#[tokio::test(flavor = "multi_thread")]
async fn every_event_type_round_trips_through_the_broker() {
    require_broker();
    let topic = unique("events");
    create_topic(&topic, 1).await;

    let sent: Vec<Envelope> = Event::examples()
        .into_iter()
        .map(|event| Envelope::new(event, format!("corr-{}", uuid::Uuid::new_v4())))
        .collect();
    assert_eq!(sent.len(), EVENT_TYPES.len());
    let payloads: Vec<(String, Vec<u8>)> = sent
        .iter()
        .map(|e| (e.event_id.to_string(), e.to_json()))
        .collect();
    let records: Vec<(&str, &[u8])> = payloads
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    produce(&topic, None, &records, &[]).await;

    let consumer: BaseConsumer = client_config()
        .set("group.id", unique("events-group"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    consumer.subscribe(&[&topic]).expect("subscribe");
    let mut received = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while received.len() < sent.len() && Instant::now() < deadline {
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            let message = message.expect("consume");
            let key = String::from_utf8(message.key().unwrap().to_vec()).unwrap();
            let envelope = Envelope::decode(message.payload().unwrap())
                .unwrap_or_else(|e| panic!("{key}: {e}"));
            assert_eq!(envelope.event_id.to_string(), key);
            received.push(envelope);
        }
    }
    assert_eq!(
        received, sent,
        "every event decodes to what was sent, in order"
    );
    delete_topics(&[&topic]).await;
}
