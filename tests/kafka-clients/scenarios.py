"""Scenarios that Kafka clients nobody here wrote run against Strata's Kafka listener.

Run by crates/cli/tests/kafka_clients.rs with the venv tests/kafka-clients/install.sh makes:

    python scenarios.py SCENARIO BOOTSTRAP [ARGS...]

Each scenario exits 0 when every check holds and prints what it saw; on a failed check it
exits 1 with the reason on stderr. Every wait is bounded.
"""

import json
import sys
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

WAIT_S = 60  # generous for a loaded two-core CI machine


def fail(message):
    print(f"FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


def json_value(i):
    """Compressible, JSON-like values, as services produce them."""
    return json.dumps(
        {"id": i, "kind": "order", "customer": f"customer-{i % 17}", "items": [1, 2, 3]}
    ).encode()


def confluent_produce(bootstrap, topic, count, compression, idempotent=True):
    """Produces count keyed records; returns {partition: [value, ...]} in acknowledged order."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "compression.type": compression,
            "enable.idempotence": idempotent,
            "acks": "all",
            "linger.ms": 5,
            "message.timeout.ms": WAIT_S * 1000,
        }
    )
    acknowledged = {}
    errors = []

    def delivered(error, message):
        if error is not None:
            errors.append(str(error))
        else:
            acknowledged.setdefault(message.partition(), []).append(message.value())

    for i in range(count):
        producer.produce(topic, key=f"key-{i % 7}", value=json_value(i), on_delivery=delivered)
        producer.poll(0)
    remaining = producer.flush(WAIT_S)
    check(remaining == 0, f"{remaining} records not delivered within {WAIT_S} s")
    check(not errors, f"delivery errors: {errors[:3]}")
    return acknowledged


def confluent_read(bootstrap, assignments, expected):
    """Reads `expected` records from `assignments` (TopicPartitions with offsets)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "strata-test-reader",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.assign(assignments)
    read = []
    deadline = time.monotonic() + WAIT_S
    while len(read) < expected and time.monotonic() < deadline:
        message = consumer.poll(1.0)
        if message is None:
            continue
        if message.error():
            fail(f"consumer error: {message.error()}")
        read.append(message)
    consumer.close()
    check(len(read) == expected, f"read {len(read)} of {expected} records")
    return read


def roundtrip(bootstrap, topic, partitions, count, compression):
    """confluent-kafka produces with a codec and reads everything back in order."""
    acknowledged = confluent_produce(bootstrap, topic, count, compression)
    assignments = [TopicPartition(topic, p, 0) for p in range(partitions)]
    read = confluent_read(bootstrap, assignments, count)
    by_partition = {}
    for message in read:
        by_partition.setdefault(message.partition(), []).append(message.value())
    check(by_partition == acknowledged, "records read differ from those acknowledged")
    print(f"{compression}: {count} records produced and read back in order")


def kafka_python_roundtrip(bootstrap, topic, count, compression):
    """kafka-python produces with a codec and consumes from the beginning."""
    from kafka import KafkaConsumer, KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        compression_type=None if compression == "none" else compression,
        acks="all",
    )
    futures = [producer.send(topic, key=b"k", value=json_value(i)) for i in range(count)]
    producer.flush(timeout=WAIT_S)
    offsets = [future.get(timeout=WAIT_S).offset for future in futures]
    check(offsets == sorted(offsets), "acknowledged offsets are not in send order")
    producer.close()
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=WAIT_S * 1000,
    )
    values = []
    for message in consumer:
        values.append(message.value)
        if len(values) == count:
            break
    consumer.close()
    check(values == [json_value(i) for i in range(count)], f"read {len(values)} records, not the {count} sent")
    print(f"kafka-python {compression}: {count} records round-tripped")


def positions(bootstrap, topic):
    """Consume from an offset and from a timestamp (one partition, 10 records)."""
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(5):
        producer.produce(topic, partition=0, value=f"early-{i}".encode(), timestamp=1_000_000 + i)
    for i in range(5):
        producer.produce(topic, partition=0, value=f"late-{i}".encode(), timestamp=2_000_000 + i)
    check(producer.flush(WAIT_S) == 0, "records not delivered")

    from_offset = confluent_read(bootstrap, [TopicPartition(topic, 0, 7)], 3)
    check([m.offset() for m in from_offset] == [7, 8, 9], "reading from offset 7")

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "strata-test-times"})
    found = consumer.offsets_for_times([TopicPartition(topic, 0, 2_000_000)], timeout=WAIT_S)
    consumer.close()
    check(found[0].offset == 5, f"offsets_for_times gave {found[0].offset}, not 5")
    from_time = confluent_read(bootstrap, [TopicPartition(topic, 0, found[0].offset)], 5)
    check(
        [m.value() for m in from_time] == [f"late-{i}".encode() for i in range(5)],
        "reading from a timestamp",
    )
    low, high = Consumer({"bootstrap.servers": bootstrap, "group.id": "w"}).get_watermark_offsets(
        TopicPartition(topic, 0), timeout=WAIT_S
    )
    check((low, high) == (0, 10), f"watermarks {(low, high)}")
    print("offset, timestamp and watermark queries answered")


def errors(bootstrap, small_topic):
    """Unknown topics and too-large records, as the clients report them."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            # How long librdkafka waits for a topic missing from the metadata to appear before
            # failing its records as unknown (the broker does not create topics on demand).
            "topic.metadata.propagation.max.ms": 1000,
            "message.timeout.ms": WAIT_S * 1000,
        }
    )
    unknown, too_large = [], []
    producer.produce("no-such-topic", value=b"x", on_delivery=lambda e, m: unknown.append(e))
    producer.produce(small_topic, value=b"y" * 4096, on_delivery=lambda e, m: too_large.append(e))
    check(producer.flush(WAIT_S) == 0, "both records get a delivery report")
    check(
        unknown[0] is not None
        and unknown[0].code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC),
        f"an unknown topic reported as {unknown}",
    )
    check(
        too_large[0] is not None and too_large[0].code() == KafkaError.MSG_SIZE_TOO_LARGE,
        f"a record above max.message.bytes reported as {too_large}",
    )
    print("reported:", unknown[0].name(), too_large[0].name())


SCENARIOS = {
    "roundtrip": lambda b, topic, partitions, count, codec: roundtrip(
        b, topic, int(partitions), int(count), codec
    ),
    "kafka-python-roundtrip": lambda b, topic, count, codec: kafka_python_roundtrip(
        b, topic, int(count), codec
    ),
    "positions": positions,
    "errors": errors,
}

if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] not in SCENARIOS:
        fail(f"usage: scenarios.py {{{'|'.join(SCENARIOS)}}} BOOTSTRAP [ARGS...]")
    try:
        SCENARIOS[sys.argv[1]](*sys.argv[2:])
    except KafkaException as error:
        fail(f"Kafka client error: {error}")
