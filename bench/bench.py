"""Benchmarks smmctl against the tools operators would use instead, on the
same broker, in the same run, alternating the two sides.

Usage: bench.py --brokers HOST:PORT [--runs N] [--warmup N] [--only NAME]

Each pair prints median, min and max wall time (start-up included, as an
operator or cron job pays it) and peak RSS for both sides, and the ratio of
the medians. Results go to bench/results/ as JSON and Markdown
(latest.md is the table bench/README.md links to). A run of some
pairs only (--only) carries the other pairs' figures over from the previous
results file, each marked with the date it was measured.

The worker-runtime pair is a throughput pair: the smm-workers runtime with a
no-op handler against a plain rdkafka consume loop, both reading the same
records; its ratio is runtime records/s over plain records/s, so higher is
better.

The dlq replay pair copies 100 000 dead letters back to their original
topic: `smmctl dlq replay --execute` (Kafka transactions of 5000 records (the default --batch),
the group's offsets in each) against bench/replay_confluent.py, a plain
consume→produce copy without transactions (at least once). Each run uses a
fresh group, so each run copies every record; the destination topic grows
by 100 000 records a run on both sides alike.

A side that fails, or a reference that disagrees with smmctl's numbers,
is reported as such: no figure is printed for it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import statistics
import struct
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
SMMCTL = ROOT / "target" / "release" / "smmctl"
CONSUME_BENCH = ROOT / "target" / "release" / "examples" / "consume_bench"
SCALE_OUT_BENCH = ROOT / "target" / "release" / "examples" / "scale_out_bench"
SCALE_OUT_PAYMENTS = 10_000
CONSUME_TOPIC = "bench.consume"
CONSUME_PARTITIONS = 3
CONSUME_RECORDS = 200_000
CONSUME_RECORD_BYTES = 200
REPLAY_DLQ = "bench.replay.orders.DLT"
REPLAY_DESTINATION = "bench.replay.orders"
REPLAY_PARTITIONS = 3
REPLAY_RECORDS = 100_000
REPLAY_RECORD_BYTES = 200
# Each run copies 100 000 records; this many runs per side keep the pair
# within a few minutes.
REPLAY_RUNS = 5
PYTHON = sys.executable

# kafka-consumer-groups.sh runs the tool through kafka-run-class.sh with
# these JVM settings; the reference side uses them too.
KAFKA_JVM = [
    "java",
    "-Xmx256M",
    "-server",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
]


@dataclass
class Measure:
    wall: list[float] = field(default_factory=list)
    rss_kb: list[int] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    # Throughput pairs: records per second by the program's own clock.
    rates: list[float] = field(default_factory=list)

    def summary(self) -> dict:
        if not self.wall:
            return {"ok": False, "failures": self.failures}
        out = {
            "ok": not self.failures,
            "runs": len(self.wall),
            "median_s": statistics.median(self.wall),
            "min_s": min(self.wall),
            "max_s": max(self.wall),
            "peak_rss_mb": max(self.rss_kb) / 1024,
            "failures": self.failures,
        }
        if self.rates:
            out |= {
                "median_records_per_s": statistics.median(self.rates),
                "min_records_per_s": min(self.rates),
                "max_records_per_s": max(self.rates),
            }
        return out


@dataclass
class Side:
    name: str
    argv: list[str]
    # Turns stdout into comparable figures, to check both sides agree.
    parse: object = None
    # Exit codes that mean the command ran: `--help` of Kafka's tools exits
    # 1, and `health` exits 1 on a cluster that is not the panel's.
    ok_codes: tuple = (0,)
    # Checks one run's stdout; raises ValueError when the run did not do
    # the work (the failure is reported, the run not counted).
    check: object = None


# An argv element containing this gets a fresh value at every run (a new
# consumer group for a side that must start from the beginning each time).
UNIQUE = "{unique}"


def argv_of(side: Side) -> list[str]:
    token = uuid.uuid4().hex[:12]
    return [a.replace(UNIQUE, token) for a in side.argv]


@dataclass
class Pair:
    name: str
    smmctl: Side
    reference: Side
    target: str
    # Returns True when the figures meet the target.
    met: object
    # A throughput pair: each run prints {"records": N, "seconds": s}, and
    # the ratio is the first side's records/s over the second's.
    records: int | None = None
    # What the two sides are called in the results JSON.
    labels: tuple = ("smmctl", "reference")
    # The data it needs: "lag", "consume" or "replay".
    prepare: str = "lag"
    # At most this many measured runs per side (long pairs), if set.
    max_runs: int | None = None
    # Shown under the table: what the reader must know to read the row.
    note: str | None = None

    @property
    def throughput(self) -> bool:
        return self.records is not None


def timed(argv: list[str], env: dict) -> tuple[float, int, str, str, int]:
    start = time.perf_counter()
    proc = subprocess.run(
        ["/usr/bin/time", "-f", "%M", *argv],
        capture_output=True,
        text=True,
        env=env,
    )
    wall = time.perf_counter() - start
    lines = proc.stderr.strip().splitlines()
    rss = int(lines[-1]) if lines and lines[-1].isdigit() else 0
    stderr = "\n".join(lines[:-1])
    return wall, rss, proc.stdout, stderr, proc.returncode


# ------------------------------------------------------------- data


def prepare_lag(brokers: str, groups: int, partitions: int, records: int, committed: int) -> None:
    """One topic per group, `partitions` each, `records` per partition, and
    each group committed at `committed` on every partition. Idempotent."""
    admin = AdminClient({"bootstrap.servers": brokers})
    names = [f"bench.lag.{i:03d}" for i in range(groups)]
    existing = set(admin.list_topics(timeout=10).topics)
    missing = [NewTopic(n, partitions, 1) for n in names if n not in existing]
    if missing:
        for name, f in admin.create_topics(missing, request_timeout=30).items():
            f.result()
        wait_for_topics(admin, names)
    probe = Consumer({"bootstrap.servers": brokers, "group.id": "bench.probe"})
    producer = Producer({"bootstrap.servers": brokers, "linger.ms": 20})
    for name in names:
        for p in range(partitions):
            _, high = retrying(lambda: probe.get_watermark_offsets(TopicPartition(name, p), timeout=10))
            for i in range(high, records):
                producer.produce(name, key=f"k{i}", value=b"x" * 200, partition=p)
    producer.flush(60)
    probe.close()
    for i, name in enumerate(names):
        c = Consumer({"bootstrap.servers": brokers, "group.id": f"bench.lag.group.{i:03d}", "enable.auto.commit": False})
        c.commit(offsets=[TopicPartition(name, p, committed) for p in range(partitions)], asynchronous=False)
        c.close()


def retrying(call, attempts: int = 50):
    """Leadership of new partitions settles a moment after they exist."""
    for i in range(attempts):
        try:
            return call()
        except Exception:
            if i == attempts - 1:
                raise
            time.sleep(0.2)


def wait_for_topics(admin: AdminClient, names: list[str]) -> None:
    deadline = time.time() + 60
    while time.time() < deadline:
        topics = admin.list_topics(timeout=10).topics
        if all(n in topics and all(p.leader >= 0 for p in topics[n].partitions.values()) for n in names):
            return
        time.sleep(0.2)
    raise SystemExit("bench: topics did not become ready")


# ------------------------------------------------------------- parsers


def smmctl_totals(stdout: str) -> dict:
    doc = json.loads(stdout)
    return {g["group"]: g["total_lag"] for g in doc["groups"]}


def confluent_totals(stdout: str) -> dict:
    return json.loads(stdout)


def kafka_tool_totals(stdout: str) -> dict:
    totals: dict = {}
    for line in stdout.splitlines():
        cols = line.split()
        if len(cols) < 6 or cols[0] == "GROUP" or not cols[2].isdigit():
            continue
        group, lag = cols[0], cols[5]
        if lag.isdigit():
            totals[group] = totals.get(group, 0) + int(lag)
        else:
            totals.setdefault(group, None)
    return totals


def agree(a: dict, b: dict, prefix: str) -> str | None:
    a = {k: v for k, v in a.items() if k.startswith(prefix)}
    b = {k: v for k, v in b.items() if k.startswith(prefix)}
    if a == b:
        return None
    diff = sorted(set(a.items()) ^ set(b.items()))[:6]
    return f"the two sides disagree on {len(set(a) ^ set(b)) or 'some'} groups, e.g. {diff}"


# ------------------------------------------------------------- run


def records_per_second(stdout: str, records: int) -> float:
    """The rate a throughput run reports; raises ValueError when the run
    did not report consuming exactly `records`."""
    try:
        doc = json.loads(stdout.strip().splitlines()[-1])
        seen, seconds = int(doc["records"]), float(doc["seconds"])
    except (IndexError, KeyError, TypeError, ValueError) as e:
        raise ValueError(f"no result line in its output ({e}): {stdout.strip()[:200]!r}") from None
    if seen != records or seconds <= 0:
        raise ValueError(f"reported {seen} records in {seconds} s, expected {records}")
    return records / seconds


def run_pair(pair: Pair, runs: int, warmup: int, env: dict, check_prefix: str | None) -> dict:
    first, second = pair.labels
    sides = {first: Measure(), second: Measure()}
    outputs = {}
    requested = runs
    if pair.max_runs is not None:
        runs = min(runs, pair.max_runs)
    for i in range(warmup + runs):
        order = [(first, pair.smmctl), (second, pair.reference)]
        if i % 2:
            order.reverse()
        for key, side in order:
            wall, rss, out, err, code = timed(argv_of(side), env)
            if code not in side.ok_codes:
                sides[key].failures.append(f"exit {code}: {err.strip()[:300]}")
                continue
            if side.check:
                try:
                    side.check(out)
                except ValueError as e:
                    sides[key].failures.append(str(e))
                    continue
            rate = None
            if pair.throughput:
                try:
                    rate = records_per_second(out, pair.records)
                except ValueError as e:
                    sides[key].failures.append(str(e))
                    continue
            outputs[key] = out
            if i >= warmup:
                sides[key].wall.append(wall)
                sides[key].rss_kb.append(rss)
                if rate is not None:
                    sides[key].rates.append(rate)
    result = {
        "name": pair.name,
        "target": pair.target,
        first: {"name": pair.smmctl.name, "command": " ".join(pair.smmctl.argv), **sides[first].summary()},
        second: {"name": pair.reference.name, "command": " ".join(pair.reference.argv), **sides[second].summary()},
    }
    if pair.throughput:
        result |= {"kind": "throughput", "sides": [first, second], "records": pair.records}
    if pair.note:
        result["note"] = pair.note
    if runs < requested:
        result["note"] = f"{result.get('note', '')} {runs} runs per side after {warmup} warm-up, not {requested}.".strip()
    problem = None
    if check_prefix and pair.smmctl.parse and pair.reference.parse and len(outputs) == 2:
        problem = agree(pair.smmctl.parse(outputs[first]), pair.reference.parse(outputs[second]), check_prefix)
    s, r = result[first], result[second]
    if problem:
        result["error"] = problem
    elif s.get("ok") and r.get("ok"):
        if pair.throughput:
            result["ratio"] = s["median_records_per_s"] / r["median_records_per_s"]
        else:
            result["ratio"] = r["median_s"] / s["median_s"]
        result["met"] = bool(pair.met(s, r, result["ratio"]))
    else:
        failures = s.get("failures", []) + r.get("failures", [])
        first = " ".join(failures[0].split())[:160] if failures else "a side did not run"
        result["error"] = f"{first} ({len(failures)} failed run(s))" if failures else first
    return result


def fmt_side(side: dict) -> str:
    if not side.get("ok"):
        return "failed"
    return f"{side['median_s'] * 1000:.0f} ms ({side['min_s'] * 1000:.0f}–{side['max_s'] * 1000:.0f})"


def fmt_ratio(ratio: float) -> str:
    """One decimal, two below 1× (0.08× is not 0.1×)."""
    return f"{ratio:.2f}×" if ratio < 1 else f"{ratio:.1f}×"


def when(r: dict, date: str) -> str:
    """A note on a row measured by an earlier run than the table's date."""
    measured = r.get("measured", date)
    return "" if measured == date else f" (measured {measured})"


def newest(rows: list[dict], meta: dict) -> str:
    dates = [r.get("measured", meta["date"]) for r in rows]
    return max(dates) if dates else meta["date"]


def markdown(results: list[dict], meta: dict) -> str:
    results = [r for r in results if r.get("kind") != "throughput"]
    if not results:
        return ""
    date = newest(results, meta)
    lines = [
        f"Measured {date} on {meta['cores']} cores, {meta['broker']}; "
        f"{meta['runs']} runs per side after {meta['warmup']} warm-up, alternating. "
        "Times are wall clock including start-up; ratio = reference median / smmctl median.",
        "",
        "| benchmark | smmctl command | smmctl median (min–max) | reference | reference median (min–max) | ratio | target | met | peak RSS smmctl / reference |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        s, ref = r["smmctl"], r["reference"]
        ratio = fmt_ratio(r["ratio"]) if "ratio" in r else "—"
        met = ("yes" if r["met"] else "**missed**") if "met" in r else f"**failed: {r.get('error', '')}**"
        if r["target"] in ("—", "wall time, start-up included") and "met" in r:
            met = "—"
        rss = (
            f"{s['peak_rss_mb']:.0f} MB / {ref['peak_rss_mb']:.0f} MB"
            if s.get("ok") and ref.get("ok")
            else "—"
        )
        lines.append(
            f"| {r['name']}{when(r, date)} | `{s.get('name', '')}` | {fmt_side(s)} | {ref['name']} | {fmt_side(ref)} | {ratio} | {r['target']} | {met} | {rss} |"
        )
    notes = [r for r in results if r.get("note")]
    if notes:
        lines.append("")
        lines += [f"- {r['name']}: {r['note']}" for r in notes]
    return "\n".join(lines) + "\n"


def fmt_rate(side: dict) -> str:
    if not side.get("ok") or "median_records_per_s" not in side:
        return "failed"
    return (
        f"{side['median_records_per_s']:,.0f}/s "
        f"({side['min_records_per_s']:,.0f}–{side['max_records_per_s']:,.0f})"
    ).replace(",", " ")


def throughput_markdown(results: list[dict], meta: dict) -> str:
    results = [r for r in results if r.get("kind") == "throughput"]
    if not results:
        return ""
    date = newest(results, meta)
    lines = [
        "",
        f"Worker runtime, measured {date}: the smm-workers runtime (`runtime::run`, a no-op handler) "
        "against a plain rdkafka `StreamConsumer` loop, in the same Rust binary "
        "(`workers/examples/consume_bench.rs`), each run a fresh group reading the topic from the start. "
        "Records/s by the program's own clock, from creating the consumer to the last record; "
        "wall time is the whole process, start-up and leaving the group included. "
        "Throughput ratio = runtime records/s ÷ plain records/s: **higher is better**, 1.0× is parity.",
        "",
        "| benchmark | runtime records/s median (min–max) | runtime wall median (min–max) | plain rdkafka records/s median (min–max) | plain wall median (min–max) | throughput ratio runtime / plain | met | peak RSS runtime / plain |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        a, b = r["sides"]
        s, ref = r[a], r[b]
        ratio = f"{r['ratio']:.2f}× (target {r['target']})" if "ratio" in r else f"— (target {r['target']})"
        met = ("yes" if r["met"] else "**missed**") if "met" in r else f"**failed: {r.get('error', '')}**"
        rss = (
            f"{s['peak_rss_mb']:.0f} MB / {ref['peak_rss_mb']:.0f} MB"
            if s.get("ok") and ref.get("ok")
            else "—"
        )
        lines.append(
            f"| {r['name']}{when(r, date)} | {fmt_rate(s)} | {fmt_side(s)} | {fmt_rate(ref)} | {fmt_side(ref)} | {ratio} | {met} | {rss} |"
        )
    return "\n".join(lines) + "\n"


def result_key(r: dict) -> tuple:
    second = r.get("sides", ["smmctl", "reference"])[1]
    return (r["name"], r[second]["name"])


def previous_results() -> tuple[str | None, list[dict], list[dict]]:
    """The newest results file's pairs and scaling rows, each stamped with
    the date it was measured, to carry over those this run does not redo."""
    files = sorted(RESULTS.glob("*.json"))
    if not files:
        return None, [], []
    try:
        doc = json.loads(files[-1].read_text())
    except (OSError, ValueError) as e:
        print(f"bench: cannot read {files[-1].name} ({e}); earlier figures are not carried over", file=sys.stderr)
        return None, [], []
    date = doc.get("meta", {}).get("date")
    rows = []
    for r in doc.get("results", []) + doc.get("scaling", []):
        r.setdefault("measured", date)
        r.setdefault("carried_from", files[-1].name)
        rows.append(r)
    results = [r for r in rows if "partitions" not in r]
    scaling = [r for r in rows if "partitions" in r]
    return files[-1].name, results, scaling


def prepare_consume(brokers: str, topic: str, partitions: int, records: int, size: int) -> None:
    """`records` records of `size` bytes on `topic`, spread over its
    partitions: JSON-ish event envelopes padded to `size`, each with an
    x-correlation-id header as the panel's producers send. Idempotent."""
    admin = AdminClient({"bootstrap.servers": brokers})
    if topic not in admin.list_topics(timeout=10).topics:
        for _, f in admin.create_topics([NewTopic(topic, partitions, 1)], request_timeout=30).items():
            f.result()
        wait_for_topics(admin, [topic])
    probe = Consumer({"bootstrap.servers": brokers, "group.id": "bench.probe"})

    def total() -> int:
        return sum(
            retrying(lambda p=p: probe.get_watermark_offsets(TopicPartition(topic, p), timeout=10))[1]
            for p in range(partitions)
        )

    have = total()
    if have > records:
        probe.close()
        raise SystemExit(f"bench: {topic} holds {have} records, more than the {records} the pair reads; delete it")
    producer = Producer({
        "bootstrap.servers": brokers,
        "linger.ms": 50,
        "batch.size": 1_000_000,
        "queue.buffering.max.messages": 500_000,
        "acks": "all",
    })
    for i in range(have, records):
        correlation = str(uuid.uuid4())
        value = (
            f'{{"event_id":"{uuid.uuid4()}","type":"order.created","occurred_at":"2026-11-29T10:58:{i % 60:02d}Z",'
            f'"data":{{"order_id":{1_000_000 + i},"service_id":{i % 400},"quantity":{100 * (1 + i % 50)},"link":"'
        )
        value = (value + "x" * (size - len(value) - 3) + '"}}').encode()
        assert len(value) == size, len(value)
        while True:
            try:
                producer.produce(topic, key=f"order-{i % 5000}", value=value,
                                 headers=[("x-correlation-id", correlation.encode())])
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    if producer.flush(120):
        raise SystemExit(f"bench: records for {topic} were not all acknowledged")
    have = total()
    probe.close()
    if have != records:
        raise SystemExit(f"bench: {topic} holds {have} records after preparing, expected {records}")


def prepare_scale(brokers: str, total: int, per_topic: int = 10) -> list[str]:
    """`total` partitions: topics of `per_topic` partitions, one group each,
    committed half way. Returns the group names."""
    admin = AdminClient({"bootstrap.servers": brokers})
    count = max(1, total // per_topic)
    parts = min(per_topic, total)
    names = [f"bench.scale.{total}.{i:03d}" for i in range(count)]
    existing = set(admin.list_topics(timeout=10).topics)
    missing = [NewTopic(n, parts, 1) for n in names if n not in existing]
    if missing:
        for _, f in admin.create_topics(missing, request_timeout=30).items():
            f.result()
        wait_for_topics(admin, names)
    producer = Producer({"bootstrap.servers": brokers, "linger.ms": 20})
    probe = Consumer({"bootstrap.servers": brokers, "group.id": "bench.probe"})
    for name in names:
        for p in range(parts):
            _, high = retrying(lambda: probe.get_watermark_offsets(TopicPartition(name, p), timeout=10))
            for i in range(high, 10):
                producer.produce(name, key=f"k{i}", value=b"x" * 200, partition=p)
    producer.flush(60)
    probe.close()
    groups = []
    for name in names:
        group = f"{name}.group"
        c = Consumer({"bootstrap.servers": brokers, "group.id": group, "enable.auto.commit": False})
        c.commit(offsets=[TopicPartition(name, p, 5) for p in range(parts)], asynchronous=False)
        c.close()
        groups.append(group)
    return groups


def prepare_replay(brokers: str) -> None:
    """REPLAY_RECORDS dead letters on REPLAY_DLQ, as Spring's
    DeadLetterPublishingRecoverer writes them, each naming
    REPLAY_DESTINATION as its original topic. Idempotent."""
    admin = AdminClient({"bootstrap.servers": brokers})
    names = [REPLAY_DLQ, REPLAY_DESTINATION]
    existing = set(admin.list_topics(timeout=10).topics)
    missing = [NewTopic(n, REPLAY_PARTITIONS, 1) for n in names if n not in existing]
    if missing:
        for _, f in admin.create_topics(missing, request_timeout=30).items():
            f.result()
        wait_for_topics(admin, names)
    probe = Consumer({"bootstrap.servers": brokers, "group.id": "bench.probe"})

    def total() -> int:
        return sum(
            retrying(lambda p=p: probe.get_watermark_offsets(TopicPartition(REPLAY_DLQ, p), timeout=10))[1]
            for p in range(REPLAY_PARTITIONS)
        )

    have = total()
    if have not in (0, REPLAY_RECORDS):
        probe.close()
        raise SystemExit(f"bench: {REPLAY_DLQ} holds {have} records, not {REPLAY_RECORDS}; delete it")
    if have == 0:
        producer = Producer({
            "bootstrap.servers": brokers,
            "linger.ms": 50,
            "batch.size": 1_000_000,
            "queue.buffering.max.messages": 500_000,
            "acks": "all",
        })
        for i in range(REPLAY_RECORDS):
            p = i % REPLAY_PARTITIONS
            value = (
                f'{{"event_id":"{uuid.uuid4()}","type":"order.created","occurred_at":"2026-11-29T10:58:{i % 60:02d}Z",'
                f'"data":{{"order_id":{1_000_000 + i},"service_id":{i % 400},"quantity":{100 * (1 + i % 50)},"link":"'
            )
            value = (value + "x" * (REPLAY_RECORD_BYTES - len(value) - 3) + '"}}').encode()
            headers = [
                ("kafka_original-topic", REPLAY_DESTINATION.encode()),
                ("kafka_original-partition", struct.pack(">i", p)),
                ("kafka_original-offset", struct.pack(">q", 40_000 + i // REPLAY_PARTITIONS)),
                ("kafka_exception-fqcn", b"org.springframework.kafka.support.serializer.DeserializationException"),
                ("kafka_exception-message",
                 f"failed to deserialize; nested exception is com.fasterxml.jackson.databind.exc."
                 f"InvalidFormatException: Cannot deserialize value of type `int` from String \"q{i}\"".encode()),
                ("x-correlation-id", str(uuid.uuid4()).encode()),
            ]
            while True:
                try:
                    producer.produce(REPLAY_DLQ, key=f"order-{i % 5000}", value=value, partition=p, headers=headers)
                    break
                except BufferError:
                    producer.poll(0.05)
            producer.poll(0)
        if producer.flush(120):
            raise SystemExit(f"bench: records for {REPLAY_DLQ} were not all acknowledged")
        have = total()
    probe.close()
    if have != REPLAY_RECORDS:
        raise SystemExit(f"bench: {REPLAY_DLQ} holds {have} records after preparing, expected {REPLAY_RECORDS}")


def smmctl_replayed(stdout: str) -> None:
    try:
        doc = json.loads(stdout)
        replayed, executed, skipped = doc["replayed"], doc["executed"], doc["skipped"]
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"no replay report in its output ({e}): {stdout.strip()[:200]!r}") from None
    if not executed or replayed != REPLAY_RECORDS or skipped:
        raise ValueError(f"replayed {replayed} records ({len(skipped)} skipped), expected {REPLAY_RECORDS}")


def script_copied(stdout: str) -> None:
    lines = stdout.strip().splitlines()
    copied = lines[-1] if lines else ""
    if copied != str(REPLAY_RECORDS):
        raise ValueError(f"copied {copied or 'nothing'} records, expected {REPLAY_RECORDS}")


def reset_new_offsets_smmctl(stdout: str) -> dict:
    doc = json.loads(stdout)
    return {f"{p['topic']}/{p['partition']}": p["new"] for p in doc["partitions"]}


def reset_new_offsets_kafka(stdout: str) -> dict:
    out = {}
    for line in stdout.splitlines():
        cols = line.split()
        if len(cols) >= 4 and cols[2].isdigit() and cols[3].isdigit():
            out[f"{cols[1]}/{cols[2]}"] = int(cols[3])
    return out


def kafka_tool(classpath: str, main_class: str, *args: str) -> list[str]:
    return [*KAFKA_JVM, "-cp", classpath, main_class, *args]


def scale_out(args, brokers: str) -> None:
    """One `smmctl run payments` against three, on the same backlog of
    payment confirmations and the same PostgreSQL, alternately; then the
    same with synchronous_commit off, to show what the WAL flush at each
    commit costs. Writes results/scale-out.md."""
    database = args.database_url.rsplit("/", 1)[-1].split("?", 1)[0]
    rows = []
    for synchronous_commit in ("on", "off"):
        subprocess.run(
            ["psql", "-q", args.database_url, "-c",
             f"ALTER DATABASE {database} SET synchronous_commit = {synchronous_commit}"],
            check=True,
        )
        print(f"bench: scale-out, {SCALE_OUT_PAYMENTS} queued payments, 1 and 3 processes, "
              f"synchronous_commit={synchronous_commit}", file=sys.stderr)
        drained = {1: [], 3: []}
        busy = {1: [], 3: []}
        for i in range(args.warmup + args.runs):
            for processes in (1, 3):
                out = subprocess.run(
                    [str(SCALE_OUT_BENCH), "--smmctl", str(SMMCTL), "--brokers", brokers,
                     "--database-url", args.database_url, "--payments", str(SCALE_OUT_PAYMENTS),
                     "--processes", str(processes)],
                    capture_output=True, text=True, check=True,
                ).stdout
                row = json.loads(out.strip().splitlines()[-1])
                if i >= args.warmup:
                    drained[processes].append(row["first_to_last"])
                    busy[processes].append(row["busy_cores"])
        rows.append((synchronous_commit, drained, busy))
    subprocess.run(
        ["psql", "-q", args.database_url, "-c", f"ALTER DATABASE {database} RESET synchronous_commit"],
        check=True,
    )
    date = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Workers scaled out",
        "",
        f"Measured {date} on {os.cpu_count()} cores, with one broker and PostgreSQL on the same machine: "
        f"{SCALE_OUT_PAYMENTS} payment confirmations (3 partitions, keyed over 3000 users) drained by "
        f"`smmctl run payments`, timed from the first payment to the last; the processes join their "
        f"group first, then the confirmations are produced at once "
        f"([scale_out_bench.rs](../../workers/examples/scale_out_bench.rs)); "
        f"{args.runs} runs of each, alternately, after {args.warmup} warm-up. Busy cores are "
        "the whole machine's, over the drain (workers, PostgreSQL and the broker).",
        "",
        "| synchronous_commit | Processes | Median drain | Payments/s | Min–max | Busy cores | 3 vs 1 |",
        "|---|---|---|---|---|---|---|",
    ]
    for synchronous_commit, drained, busy in rows:
        one, three = statistics.median(drained[1]), statistics.median(drained[3])
        for processes, median in ((1, one), (3, three)):
            lines.append(
                f"| {synchronous_commit}{' (the panel runs this)' if synchronous_commit == 'on' else ''} "
                f"| {processes} | {median:.2f} s | {SCALE_OUT_PAYMENTS / median:.0f} | "
                f"{min(drained[processes]):.2f}–{max(drained[processes]):.2f} s | "
                f"{statistics.median(busy[processes]):.2f} | "
                f"{f'**{one / three:.2f}×**' if processes == 3 else ''} |"
            )
    lines.append("")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "scale-out.md").write_text("\n".join(lines))
    print("\n".join(lines), file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--only")
    ap.add_argument("--database-url", help="PostgreSQL for the scale-out run; without it that run is skipped")
    args = ap.parse_args()
    b = args.brokers
    env = {**os.environ, "NO_COLOR": "1", "SMM_CONFIG": "/dev/null"}
    classpath = subprocess.run([str(ROOT / "scripts" / "kafka"), "classpath"], capture_output=True, text=True, check=True).stdout.strip()
    smmctl = [str(SMMCTL), "--brokers", b]
    cgc = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"

    delete_file = ROOT / ".local" / "bench-delete-noop.json"
    lag_smmctl = Side("smmctl lag --all-groups", [*smmctl, "lag", "--all-groups", "-o", "json"], smmctl_totals)
    # The script computes lag in messages only; this is smmctl doing exactly that.
    lag_smmctl_counts = Side(
        "smmctl lag --all-groups --no-time",
        [*smmctl, "lag", "--all-groups", "--no-time", "-o", "json"],
        smmctl_totals,
    )
    script = [PYTHON, str(ROOT / "bench" / "lag_confluent.py"), b]
    always = lambda s, r, ratio: True  # noqa: E731 - pairs without a target
    pairs = [
        (
            Pair(
                "lag, 200 groups × 3 partitions, with time lag",
                lag_smmctl,
                Side("kafka-consumer-groups --describe --all-groups",
                     kafka_tool(classpath, cgc, "--bootstrap-server", b, "--describe", "--all-groups"),
                     kafka_tool_totals),
                "< 1 s and ≥ 10×",
                lambda s, r, ratio: s["median_s"] < 1.0 and ratio >= 10,
            ),
            "bench.lag.group.",
        ),
        (
            Pair(
                "lag, 200 groups × 3 partitions, messages only",
                lag_smmctl_counts,
                Side("kafka-consumer-groups --describe --all-groups",
                     kafka_tool(classpath, cgc, "--bootstrap-server", b, "--describe", "--all-groups"),
                     kafka_tool_totals),
                "< 1 s and ≥ 10×",
                lambda s, r, ratio: s["median_s"] < 1.0 and ratio >= 10,
            ),
            "bench.lag.group.",
        ),
        (
            Pair(
                "lag, 200 groups × 3 partitions, messages only",
                lag_smmctl_counts,
                Side("Python confluent-kafka script", script, confluent_totals),
                "≥ 3×",
                lambda s, r, ratio: ratio >= 3,
            ),
            "bench.lag.group.",
        ),
        (
            Pair(
                "lag, 200 groups × 3 partitions, with time lag",
                lag_smmctl,
                Side("Python confluent-kafka script (no time lag)", script, confluent_totals),
                "≥ 3×",
                lambda s, r, ratio: ratio >= 3,
            ),
            "bench.lag.group.",
        ),
        (
            Pair(
                "offsets reset preview, 1 group × 3 partitions",
                Side("smmctl offsets reset … --to-earliest",
                     [*smmctl, "offsets", "reset", "--group", "bench.lag.group.000", "--topic", "bench.lag.000",
                      "--to-earliest", "-o", "json"],
                     reset_new_offsets_smmctl),
                Side("kafka-consumer-groups --reset-offsets --dry-run",
                     kafka_tool(classpath, cgc, "--bootstrap-server", b, "--reset-offsets", "--group",
                                "bench.lag.group.000", "--topic", "bench.lag.000", "--to-earliest", "--dry-run"),
                     reset_new_offsets_kafka),
                "wall time, start-up included",
                always,
            ),
            "bench.lag.000/",
        ),
        (
            Pair(
                "records delete, 3 partitions (deletes nothing)",
                Side("smmctl records delete --before-offset 0 --execute --yes",
                     [*smmctl, "records", "delete", "--topic", "bench.lag.001", "--before-offset", "0", "--execute", "--yes"]),
                Side("kafka-delete-records --offset-json-file",
                     kafka_tool(classpath, "org.apache.kafka.tools.DeleteRecordsCommand", "--bootstrap-server", b,
                                "--offset-json-file", str(delete_file))),
                "wall time, start-up included",
                always,
            ),
            None,
        ),
        (
            Pair(
                f"dlq replay, {REPLAY_RECORDS:_} records × {REPLAY_RECORD_BYTES} B with headers, ".replace("_", " ")
                + f"{REPLAY_PARTITIONS} partitions",
                Side("smmctl dlq replay --execute --yes",
                     [*smmctl, "dlq", "replay", REPLAY_DLQ, "--group", f"bench.replay.smmctl.{UNIQUE}",
                      "--execute", "--yes", "-o", "json"],
                     check=smmctl_replayed),
                Side("Python confluent-kafka consume→produce script (no transactions)",
                     [PYTHON, str(ROOT / "bench" / "replay_confluent.py"), b, REPLAY_DLQ,
                      f"bench.replay.script.{UNIQUE}"],
                     check=script_copied),
                "≥ 3×",
                lambda s, r, ratio: ratio >= 3,
                prepare="replay",
                max_runs=REPLAY_RUNS,
                note=(
                    f"{REPLAY_DLQ} → {REPLAY_DESTINATION}, a fresh group each run, so each run copies every record; "
                    "Spring dead-letter headers (original topic/partition/offset, exception class and message) "
                    "and x-correlation-id on every record. smmctl writes the copies in Kafka transactions of 5000 (the default --batch) "
                    "records with the group's offsets in each (exactly once for read_committed readers) and adds "
                    "its x-smm-replay headers; the reference script (bench/replay_confluent.py) is weaker: no "
                    "transactions, offsets committed once at the end (at least once: a script killed half way "
                    "copies records again)."
                ),
            ),
            None,
        ),
        (
            Pair(
                "cold start: --help",
                Side("smmctl --help", [str(SMMCTL), "--help"]),
                Side("kafka-consumer-groups --help", kafka_tool(classpath, cgc, "--help"), ok_codes=(0, 1)),
                "—",
                always,
            ),
            None,
        ),
        (
            Pair(
                "cold start: one question to the broker",
                Side("smmctl health", [*smmctl, "health", "--no-produce"], ok_codes=(0, 1)),
                Side("kafka-broker-api-versions", kafka_tool(classpath, "org.apache.kafka.tools.BrokerApiVersionsCommand",
                                                             "--bootstrap-server", b)),
                "—",
                always,
            ),
            None,
        ),
    ]
    consume = [str(CONSUME_BENCH), "--brokers", b, "--topic", CONSUME_TOPIC, "--records", str(CONSUME_RECORDS)]
    pairs.append((
        Pair(
            f"worker-runtime: consume {CONSUME_RECORDS:_} records × {CONSUME_RECORD_BYTES} B, ".replace("_", " ")
            + f"{CONSUME_PARTITIONS} partitions",
            Side("smm-workers runtime, no-op handler", [*consume, "--mode", "runtime"]),
            Side("plain rdkafka StreamConsumer loop", [*consume, "--mode", "plain"]),
            "≥ 0.9",
            lambda s, r, ratio: ratio >= 0.9,
            records=CONSUME_RECORDS,
            labels=("runtime", "plain"),
            prepare="consume",
        ),
        None,
    ))

    def selected(pair: Pair) -> bool:
        return not args.only or args.only in pair.reference.name or args.only in pair.name

    chosen = [(pair, prefix) for pair, prefix in pairs if selected(pair)]
    if any(pair.prepare == "lag" for pair, _ in chosen):
        print("bench: preparing 200 groups × 3 partitions", file=sys.stderr)
        prepare_lag(b, groups=200, partitions=3, records=20, committed=12)
        delete_file.write_text(json.dumps({
            "partitions": [{"topic": "bench.lag.001", "partition": p, "offset": 0} for p in range(3)],
            "version": 1,
        }))
    if any(pair.prepare == "consume" for pair, _ in chosen):
        if not CONSUME_BENCH.is_file():
            raise SystemExit(f"bench: {CONSUME_BENCH} is missing; scripts/bench builds it "
                             "(cargo build --release -p smm-workers --example consume_bench)")
        print(f"bench: preparing {CONSUME_RECORDS} records on {CONSUME_TOPIC}", file=sys.stderr)
        prepare_consume(b, CONSUME_TOPIC, CONSUME_PARTITIONS, CONSUME_RECORDS, CONSUME_RECORD_BYTES)
    if any(pair.prepare == "replay" for pair, _ in chosen):
        print(f"bench: preparing {REPLAY_RECORDS} dead letters on {REPLAY_DLQ}", file=sys.stderr)
        prepare_replay(b)

    results = []
    for pair, prefix in chosen:
        print(f"bench: {pair.name} vs {pair.reference.name}", file=sys.stderr)
        r = run_pair(pair, args.runs, args.warmup, env, prefix)
        results.append(r)
        a, c = pair.labels
        if pair.throughput:
            figures = f"{a} {fmt_rate(r[a])}, {fmt_side(r[a])}  {c} {fmt_rate(r[c])}, {fmt_side(r[c])}  "
            outcome = f"throughput ratio {a}/{c} {r['ratio']:.2f}×" if "ratio" in r else f"FAILED: {r.get('error')}"
        else:
            figures = f"{a} {fmt_side(r[a])}  {c} {fmt_side(r[c])}  "
            outcome = f"ratio {fmt_ratio(r['ratio'])}" if "ratio" in r else f"FAILED: {r.get('error')}"
        print(f"  {figures}{outcome}", file=sys.stderr)

    scaling = []
    if not args.only or args.only.startswith("scaling"):
        for total in (10, 100, 1000):
            print(f"bench: scaling, lag over {total} partitions", file=sys.stderr)
            groups = prepare_scale(b, total)
            group_args = [a for g in groups for a in ("--group", g)]
            pair = Pair(
                f"lag over {total} partitions ({len(groups)} groups)",
                Side("smmctl lag", [*smmctl, "lag", *group_args, "-o", "json"], smmctl_totals),
                Side("kafka-consumer-groups --describe", kafka_tool(classpath, cgc, "--bootstrap-server", b, "--describe", *group_args), kafka_tool_totals),
                "—",
                always,
            )
            r = run_pair(pair, args.runs, args.warmup, env, f"bench.scale.{total}.")
            r["partitions"] = total
            # health reads every topic's metadata and watermarks, so it is
            # timed on the same cluster; it has no reference, and its exit
            # code says whether the panel is healthy, not whether it ran.
            health = Measure()
            for i in range(args.warmup + args.runs):
                wall, rss, _, err, code = timed([*smmctl, "health", "--no-produce", "-o", "json"], env)
                if code not in (0, 1):
                    health.failures.append(f"exit {code}: {err.strip()[:300]}")
                elif i >= args.warmup:
                    health.wall.append(wall)
                    health.rss_kb.append(rss)
            r["health"] = health.summary()
            scaling.append(r)
            print(f"  smmctl {fmt_side(r['smmctl'])}  reference {fmt_side(r['reference'])}", file=sys.stderr)

    if args.database_url and (not args.only or args.only in "scale-out"):
        scale_out(args, b)

    meta = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(),
        "machine": platform.platform(),
        "broker": "Apache Kafka 4.1.1 (single KRaft node, 127.0.0.1)",
        "runs": args.runs,
        "warmup": args.warmup,
    }
    for r in results + scaling:
        r["measured"] = meta["date"]
    failed = any("error" in r for r in results + scaling)
    # Pairs this run did not measure keep their latest figures, marked
    # with their date, so --only does not wipe the rest of the table.
    _, old_results, old_scaling = previous_results()
    fresh = {result_key(r): r for r in results}
    old = {result_key(r): r for r in old_results}
    merged = []
    for pair, _ in pairs:
        key = (pair.name, pair.reference.name)
        if key in fresh:
            merged.append(fresh[key])
        elif key in old:
            merged.append(old[key])
    if not scaling:
        scaling = old_scaling
    results = merged
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"{stamp}.json").write_text(json.dumps({"meta": meta, "results": results, "scaling": scaling}, indent=2) + "\n")
    table = markdown(results, meta) + throughput_markdown(results, meta) + scaling_markdown(scaling, meta)
    (RESULTS / "latest.md").write_text(table)
    print(table)
    if failed:
        sys.exit(1)


def scaling_markdown(scaling: list[dict], meta: dict) -> str:
    if not scaling:
        return ""
    date = newest(scaling, meta)
    carried = f" (measured {date})" if date != meta["date"] else ""
    lines = [
        "",
        f"Scaling{carried}: `smmctl lag` with time lag, and `kafka-consumer-groups --describe` for the same groups; `smmctl health` on the same cluster (no reference).",
        "",
        "| partitions | smmctl lag median | kafka-consumer-groups median | ratio | smmctl health median |",
        "|---|---|---|---|---|",
    ]
    for r in scaling:
        ratio = f"{r['ratio']:.1f}×" if "ratio" in r else f"failed: {r.get('error', '')}"
        health = fmt_side(r["health"]) if "health" in r else "-"
        lines.append(f"| {r['partitions']} | {fmt_side(r['smmctl'])} | {fmt_side(r['reference'])} | {ratio} | {health} |")
    ok = [r for r in scaling if r["smmctl"].get("ok")]
    if len(ok) >= 2:
        first, last = ok[0], ok[-1]
        grow = last["smmctl"]["median_s"] / first["smmctl"]["median_s"]
        size = last["partitions"] / first["partitions"]
        lines += ["", f"From {first['partitions']} to {last['partitions']} partitions ({size:.0f}× more) smmctl lag's time grew {grow:.1f}×."]
        if first.get("health", {}).get("ok") and last.get("health", {}).get("ok"):
            hgrow = last["health"]["median_s"] / first["health"]["median_s"]
            lines[-1] += f" smmctl health's grew {hgrow:.1f}×."
    if write_scaling_svg(scaling):
        lines += ["", "Plot: [bench/results/scaling.svg](bench/results/scaling.svg) (median wall time against partitions, both axes logarithmic)."]
    return "\n".join(lines) + "\n"


def write_scaling_svg(scaling: list[dict]) -> bool:
    """A small line chart of the scaling run, drawn by hand: no plotting
    library needed. Log-log axes, one line per side."""
    import math

    rows = [r for r in scaling if r["smmctl"].get("ok") and r["reference"].get("ok")]
    if len(rows) < 2:
        return False
    width, height, left, right, top, bottom = 560, 320, 70, 20, 30, 50
    xs = [r["partitions"] for r in rows]
    ys = [v for r in rows for v in (r["smmctl"]["median_s"] * 1000, r["reference"]["median_s"] * 1000)]
    x0, x1 = math.log10(min(xs)), math.log10(max(xs))
    y0, y1 = math.floor(math.log10(min(ys))), math.ceil(math.log10(max(ys)))

    def px(x):
        return left + (math.log10(x) - x0) / ((x1 - x0) or 1) * (width - left - right)

    def py(y):
        return height - bottom - (math.log10(y) - y0) / ((y1 - y0) or 1) * (height - top - bottom)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="18">median wall time (ms) against partitions, log-log</text>',
    ]
    for e in range(y0, y1 + 1):
        y = py(10 ** e)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">{10 ** e}</text>')
    for x in xs:
        parts.append(f'<text x="{px(x):.1f}" y="{height - bottom + 18}" text-anchor="middle">{x}</text>')
    parts.append(f'<text x="{(left + width - right) / 2}" y="{height - 12}" text-anchor="middle">partitions</text>')
    for key, colour, label in (("smmctl", "#1f77b4", "smmctl lag"), ("reference", "#d62728", "kafka-consumer-groups --describe")):
        points = " ".join(f"{px(r['partitions']):.1f},{py(r[key]['median_s'] * 1000):.1f}" for r in rows)
        parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for r in rows:
            parts.append(f'<circle cx="{px(r["partitions"]):.1f}" cy="{py(r[key]["median_s"] * 1000):.1f}" r="3" fill="{colour}"/>')
        last = rows[-1]
        parts.append(f'<text x="{px(last["partitions"]) - 6:.1f}" y="{py(last[key]["median_s"] * 1000) - 8:.1f}" text-anchor="end" fill="{colour}">{label}</text>')
    parts.append("</svg>")
    (RESULTS / "scaling.svg").write_text("\n".join(parts) + "\n")
    return True


if __name__ == "__main__":
    main()
