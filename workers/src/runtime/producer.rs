//! The settings and the producer every worker sends with.

use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureProducer;

/// The partitioner of every producer the project creates. The panel's Java
/// services place a keyed record by the murmur2 hash of its key, as the Java
/// client does; librdkafka's default (`consistent_random`) hashes with
/// CRC32, which puts the same key on another partition, so a key's records
/// would split across partitions and lose their order. Keyless records go
/// to a random partition.
pub const PARTITIONER: &str = "murmur2_random";

/// `client` made into a producer's settings: keys are placed as the Java
/// client places them ([`PARTITIONER`]). A `partitioner` the operator set
/// (with -X or a profile) is left as it is: that is a deliberate choice.
pub fn producer_config(client: &ClientConfig) -> ClientConfig {
    let mut config = client.clone();
    if config.get("partitioner").is_none() {
        config.set("partitioner", PARTITIONER);
    }
    config
}

/// What makes a write durable, for every producer the workers make: it
/// counts once every in-sync replica has it (at least min.insync.replicas
/// of them), and a retry after a lost acknowledgement never writes it twice.
pub const PRODUCER_DURABILITY: &[(&str, &str)] = &[("acks", "all"), ("enable.idempotence", "true")];

/// A producer for forwards and follow-up events: idempotent, acknowledged
/// by every in-sync replica, and quick to send because each send is awaited.
pub fn producer(client: &ClientConfig) -> Result<FutureProducer, KafkaError> {
    let mut config = producer_config(client);
    for (key, value) in PRODUCER_DURABILITY {
        config.set(*key, *value);
    }
    config
        .set("linger.ms", "2")
        .set("compression.type", "snappy")
        .set("message.timeout.ms", "30000");
    config.create()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producers_place_keys_with_murmur2_unless_the_operator_chose_otherwise() {
        let mut client = ClientConfig::new();
        client.set("bootstrap.servers", "127.0.0.1:9092");
        assert_eq!(
            producer_config(&client).get("partitioner"),
            Some("murmur2_random")
        );
        client.set("partitioner", "consistent_random");
        assert_eq!(
            producer_config(&client).get("partitioner"),
            Some("consistent_random")
        );
    }
}
