"""Throughput through the Kafka listener with confluent-kafka (librdkafka), for
benches/kafka-door.sh, which compares it with Strata's own Rust client in the same run.

    python kafka_door.py produce BOOTSTRAP TOPIC RECORDS SIZE CODEC VALUES
    python kafka_door.py consume BOOTSTRAP TOPIC RECORDS

VALUES is `random` (incompressible bytes) or `json` (compressible JSON-like values).
Prints one JSON object: records, seconds, records_per_s, mb_per_s.
"""

import json
import os
import sys
import time

from confluent_kafka import Consumer, Producer, TopicPartition


def values(count, size, kind):
    if kind == "random":
        pool = [os.urandom(size) for _ in range(64)]
    else:
        pool = []
        for i in range(64):
            record = {"id": i, "kind": "order", "customer": f"customer-{i % 17}", "pad": ""}
            text = json.dumps(record)
            record["pad"] = "x" * max(0, size - len(text))
            pool.append(json.dumps(record).encode()[:size])
    return [pool[i % len(pool)] for i in range(count)]


def report(records, seconds, size):
    print(
        json.dumps(
            {
                "records": records,
                "seconds": round(seconds, 3),
                "records_per_s": round(records / seconds),
                "mb_per_s": round(records * size / seconds / 1e6, 1),
            }
        )
    )


def produce(bootstrap, topic, records, size, codec, kind):
    records, size = int(records), int(size)
    payload = values(records, size, kind)
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "1",
            "compression.type": codec,
            "linger.ms": 5,
            "batch.size": 1_000_000,
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 2_000_000,
        }
    )
    failed = []
    start = time.monotonic()
    for value in payload:
        while True:
            try:
                producer.produce(topic, value=value, on_delivery=lambda e, m: e and failed.append(e))
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    left = producer.flush(120)
    elapsed = time.monotonic() - start
    if left or failed:
        sys.exit(f"{left} undelivered, {len(failed)} failed: {failed[:3]}")
    report(records, elapsed, size)


def consume(bootstrap, topic, records):
    records = int(records)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "kafka-door-bench",
            "enable.auto.commit": False,
            "fetch.max.bytes": 52_428_800,
            "max.partition.fetch.bytes": 10_485_760,
        }
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    read, size = 0, 0
    start = time.monotonic()
    deadline = start + 300
    while read < records and time.monotonic() < deadline:
        for message in consumer.consume(num_messages=10_000, timeout=1.0):
            if message.error():
                sys.exit(f"consumer error: {message.error()}")
            read += 1
            size = len(message.value())
    elapsed = time.monotonic() - start
    consumer.close()
    if read < records:
        sys.exit(f"read {read} of {records}")
    report(read, elapsed, size)


if __name__ == "__main__":
    {"produce": produce, "consume": consume}[sys.argv[1]](*sys.argv[2:])
