//! A round trip through the cluster: produce one record and read it back.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use rdkafka::consumer::Consumer as _;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message as _, Offset, TopicPartitionList};

use super::{AdminOutcome, Kafka, Recorder, humanize};

/// Produces a record to `topic` and reads it back; the time that took.
/// The topic is created on first use, with the broker's default
/// replication and a retention of an hour.
pub async fn produce_and_read_back(kafka: &Kafka, topic: &str) -> anyhow::Result<Duration> {
    let metadata = kafka.metadata()?;
    if !metadata.topics.contains_key(topic) {
        // The broker's default replication, and an ISR floor of one, so the
        // probe works on clusters whose default min.insync.replicas would
        // refuse acks=all on a topic of one replica.
        let configs = [
            ("retention.ms", "3600000".to_string()),
            ("min.insync.replicas", "1".to_string()),
        ];
        let outcome = kafka
            .create_topics(&[(topic.to_string(), 1, -1)], &configs)
            .await?;
        if let Some((_, AdminOutcome::Failed(why))) = outcome.first() {
            anyhow::bail!("cannot create {topic}: {why}");
        }
    }
    // Recorder keeps librdkafka's complaints about a broker that is down
    // out of the output; the check reports what matters.
    let producer: FutureProducer<Recorder> = kafka
        .producer_config()
        .set("acks", "all")
        .set("linger.ms", "0")
        .set(
            "message.timeout.ms",
            kafka.timeout().as_millis().to_string(),
        )
        .create_with_context(Recorder::default())
        .context("cannot create a producer")?;
    let probe = uuid::Uuid::new_v4().to_string();
    let started = Instant::now();
    let delivered = producer
        .send(
            FutureRecord::to(topic)
                .key(&probe)
                .payload(b"smmctl health probe".as_slice()),
            kafka.timeout(),
        )
        .await
        .map_err(|(e, _)| anyhow::anyhow!("cannot produce to {topic}: {e}"))?;

    let consumer = kafka.reader(&[])?;
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(
        topic,
        delivered.partition,
        Offset::Offset(delivered.offset),
    )?;
    consumer.assign(&assignment)?;
    let deadline = Instant::now() + kafka.timeout();
    tokio::task::block_in_place(|| {
        while Instant::now() < deadline {
            if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100))
                && message.key() == Some(probe.as_bytes())
            {
                return Ok(started.elapsed());
            }
        }
        Err(anyhow::anyhow!(
            "the test record was produced to {topic} but not read back within {}",
            humanize(kafka.timeout())
        ))
    })
}
