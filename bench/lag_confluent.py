"""The lag table a careful operator would script with confluent-kafka.

Reference side of the `lag` benchmark: every group's committed offsets and
the partitions' end offsets, with the same rule smmctl uses (no commit, no
lag). It uses the client's batched calls, so the comparison is with a good
script, not a naive one.

Usage: lag_confluent.py BROKERS
Prints one JSON object: {group: total_lag}.
"""

import json
import sys

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec


def main() -> None:
    admin = AdminClient({"bootstrap.servers": sys.argv[1]})
    listed = admin.list_consumer_groups(request_timeout=10).result()
    groups = [g.group_id for g in listed.valid]

    futures = {
        g: admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(g)], request_timeout=10)[g]
        for g in groups
    }
    committed = {g: f.result().topic_partitions for g, f in futures.items()}

    wanted = {
        TopicPartition(tp.topic, tp.partition): OffsetSpec.latest()
        for parts in committed.values()
        for tp in parts
    }
    ends = {}
    if wanted:
        for tp, f in admin.list_offsets(wanted, request_timeout=10).items():
            ends[(tp.topic, tp.partition)] = f.result().offset

    totals = {}
    for group, parts in committed.items():
        lags = [
            ends[(tp.topic, tp.partition)] - tp.offset
            for tp in parts
            if tp.offset >= 0 and (tp.topic, tp.partition) in ends
        ]
        totals[group] = sum(lags) if lags else None
    print(json.dumps(totals, sort_keys=True))


if __name__ == "__main__":
    main()
