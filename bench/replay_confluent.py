"""The dead-letter replay an operator would script with confluent-kafka.

Reference side of the `dlq replay` benchmark: read the dead-letter topic
from the group's committed offset (the log start for a new group) up to the
end offsets seen at start, copy every record to the topic its
kafka_original-topic header names, keeping key, value and headers, then
flush and commit the group's offsets.

Unlike `smmctl dlq replay` it uses no transactions: a script killed half way
has copied records it never committed past, and a re-run copies them again
(at least once). That is what such a script does; the benchmark notes it.

The partitions are assigned rather than subscribed to, so the script does
not wait for a group rebalance: the good script, not the naive one.

Usage: replay_confluent.py BROKERS TOPIC GROUP
Prints the number of records copied.
"""

import sys

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

ORIGINAL_TOPIC = "kafka_original-topic"


def main() -> None:
    brokers, topic, group = sys.argv[1:4]
    consumer = Consumer({
        "bootstrap.servers": brokers,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    failed = []

    def delivered(err, msg):
        if err is not None:
            failed.append(err)

    producer = Producer({"bootstrap.servers": brokers, "linger.ms": 5, "on_delivery": delivered})

    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
    start = {tp.partition: tp.offset for tp in consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10)}
    # Partitions with nothing to copy are done before they start.
    todo = {p for p, end in ends.items() if end > 0 and start[p] < end}
    consumer.assign([TopicPartition(topic, p, start[p]) if start[p] >= 0 else TopicPartition(topic, p) for p in todo])

    copied = 0
    position = {}
    idle = 0
    while todo:
        batch = consumer.consume(num_messages=1000, timeout=1.0)
        idle = 0 if batch else idle + 1
        if idle >= 30:
            raise SystemExit(f"nothing more to read from {topic} for 30 s; partitions {sorted(todo)} unfinished")
        for msg in batch:
            if msg.error():
                raise KafkaException(msg.error())
            p = msg.partition()
            if p not in todo or msg.offset() >= ends[p]:
                continue
            headers = msg.headers() or []
            to = next((v.decode() for k, v in headers if k == ORIGINAL_TOPIC and v), None)
            if to is None:
                raise SystemExit(f"{topic}/{p} offset {msg.offset()}: no {ORIGINAL_TOPIC} header")
            while True:
                try:
                    producer.produce(to, key=msg.key(), value=msg.value(), headers=headers)
                    break
                except BufferError:
                    producer.poll(0.1)
            producer.poll(0)
            copied += 1
            position[p] = msg.offset() + 1
            if position[p] >= ends[p]:
                todo.discard(p)

    if producer.flush(60) or failed:
        raise SystemExit(f"not every copy was acknowledged ({failed[:1]}); the group was not moved")
    if position:
        consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in position.items()], asynchronous=False)
    consumer.close()
    print(copied)


if __name__ == "__main__":
    main()
