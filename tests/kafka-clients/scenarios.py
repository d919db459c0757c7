"""Scenarios that Kafka clients nobody here wrote run against Strata's Kafka listener.

Run by crates/cli/tests/kafka_clients.rs with the venv tests/kafka-clients/install.sh makes:

    python scenarios.py SCENARIO BOOTSTRAP [ARGS...]

Each scenario exits 0 when every check holds and prints what it saw; on a failed check it
exits 1 with the reason on stderr. Every wait is bounded.
"""

import json
import os
import signal
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


def kafka_python_read_back(consumer, topic, count):
    """Reads partition 0 of `topic` with a kafka-python consumer and checks it holds
    json_value(0) to json_value(count - 1), in order."""
    from kafka import TopicPartition as KafkaTopicPartition

    consumer.assign([KafkaTopicPartition(topic, 0)])
    read = []
    for message in consumer:
        read.append(message.value)
        if len(read) == count:
            break
    consumer.close()
    check(read == [json_value(i) for i in range(count)], f"read {len(read)} of {count} records")


def tls_roundtrip(bootstrap, topic, ca, certificate, key):
    """confluent-kafka and kafka-python over TLS with a client certificate: one produces, the
    other reads back."""
    from kafka import KafkaConsumer

    count = 200
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "security.protocol": "SSL",
            "ssl.ca.location": ca,
            "ssl.certificate.location": certificate,
            "ssl.key.location": key,
            "acks": "all",
            "message.timeout.ms": WAIT_S * 1000,
        }
    )
    for i in range(count):
        producer.produce(topic, value=json_value(i))
    remaining = producer.flush(WAIT_S)
    check(remaining == 0, f"{remaining} records not delivered over TLS within {WAIT_S} s")
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        security_protocol="SSL",
        ssl_cafile=ca,
        ssl_certfile=certificate,
        ssl_keyfile=key,
        auto_offset_reset="earliest",
        consumer_timeout_ms=WAIT_S * 1000,
    )
    kafka_python_read_back(consumer, topic, count)
    print(f"{count} records produced by confluent-kafka and read by kafka-python over TLS")


def sasl_roundtrip(bootstrap, topic, ca, user, password):
    """confluent-kafka (SCRAM-SHA-512) produces and kafka-python (SCRAM-SHA-256) reads back,
    both over SASL_SSL; then a wrong password is refused."""
    from kafka import KafkaConsumer

    count = 200
    sasl = {
        "bootstrap.servers": bootstrap,
        "security.protocol": "SASL_SSL",
        "ssl.ca.location": ca,
        "sasl.mechanisms": "SCRAM-SHA-512",
        "sasl.username": user,
        "sasl.password": password,
    }
    producer = Producer({**sasl, "acks": "all", "message.timeout.ms": WAIT_S * 1000})
    for i in range(count):
        producer.produce(topic, value=json_value(i))
    remaining = producer.flush(WAIT_S)
    check(remaining == 0, f"{remaining} records not delivered over SASL_SSL within {WAIT_S} s")
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        security_protocol="SASL_SSL",
        ssl_cafile=ca,
        sasl_mechanism="SCRAM-SHA-256",
        sasl_plain_username=user,
        sasl_plain_password=password,
        auto_offset_reset="earliest",
        consumer_timeout_ms=WAIT_S * 1000,
    )
    kafka_python_read_back(consumer, topic, count)

    errors = []
    refused = Producer(
        {**sasl, "sasl.password": password + "-wrong", "error_cb": lambda e: errors.append(e)}
    )
    deadline = time.monotonic() + WAIT_S
    while not errors and time.monotonic() < deadline:
        refused.poll(0.2)
    check(
        any(e.code() == KafkaError._AUTHENTICATION for e in errors),
        f"a wrong password was not refused: {errors}",
    )
    print(f"{count} records over SASL_SSL (SCRAM-SHA-512 in, SCRAM-SHA-256 out); a wrong password refused")


def acls(bootstrap, topic, hidden_topic, group, ca, admin_user, admin_password):
    """confluent-kafka's AdminClient, as a super user over SASL_SSL, makes a user `reader` and
    grants it READ on `topic` and on `group`; the reader then reads in that group what the
    admin produced, is refused writing, sees only `topic` listed (not `hidden_topic`), and may
    not manage ACLs itself; deleting the grants takes the topic out of its sight."""
    from confluent_kafka.admin import (
        AclBinding,
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        AdminClient,
        ResourcePatternType,
        ResourceType,
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialUpsertion,
    )

    count = 50
    sasl = {
        "bootstrap.servers": bootstrap,
        "security.protocol": "SASL_SSL",
        "ssl.ca.location": ca,
        "sasl.mechanisms": "SCRAM-SHA-512",
    }
    as_admin = {**sasl, "sasl.username": admin_user, "sasl.password": admin_password}
    as_reader = {**sasl, "sasl.username": "reader", "sasl.password": "reader-secret"}
    admin = AdminClient(as_admin)

    def wait(futures):
        return {key: future.result(timeout=WAIT_S) for key, future in futures.items()}

    wait(
        admin.alter_user_scram_credentials(
            [
                UserScramCredentialUpsertion(
                    "reader",
                    ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096),
                    b"reader-secret",
                )
            ]
        )
    )
    producer = Producer({**as_admin, "acks": "all", "message.timeout.ms": WAIT_S * 1000})
    for i in range(count):
        producer.produce(topic, value=json_value(i))
    check(producer.flush(WAIT_S) == 0, "the admin's records were not delivered")

    def read_by_reader(resource_type, name):
        return AclBinding(
            resource_type,
            name,
            ResourcePatternType.LITERAL,
            "User:reader",
            "*",
            AclOperation.READ,
            AclPermissionType.ALLOW,
        )

    granted = [read_by_reader(ResourceType.TOPIC, topic), read_by_reader(ResourceType.GROUP, group)]
    wait(admin.create_acls(granted))
    readers_acls = AclBindingFilter(
        ResourceType.ANY,
        None,
        ResourcePatternType.ANY,
        "User:reader",
        None,
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    described = admin.describe_acls(readers_acls).result(timeout=WAIT_S)
    check(sorted(described) == sorted(granted), f"described {described}, not {granted}")

    # Managing ACLs is Alter on the cluster, which the reader does not have.
    reader_admin = AdminClient(as_reader)
    try:
        wait(reader_admin.create_acls([read_by_reader(ResourceType.TOPIC, hidden_topic)]))
        fail("the reader granted itself an ACL")
    except KafkaException as error:
        check(error.args[0].code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED, f"got {error}")

    refused = []
    writer = Producer({**as_reader, "acks": "all", "message.timeout.ms": WAIT_S * 1000})
    writer.produce(topic, value=b"from reader", on_delivery=lambda error, message: refused.append(error))
    check(writer.flush(WAIT_S) == 0, "the reader's record got no delivery report")
    check(
        refused[0] is not None and refused[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED,
        f"the reader's write was reported as {refused}",
    )

    consumer = Consumer(
        {
            **as_reader,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    read = []
    deadline = time.monotonic() + WAIT_S
    while len(read) < count and time.monotonic() < deadline:
        message = consumer.poll(1.0)
        if message is None:
            continue
        if message.error():
            fail(f"the reader's consumer failed: {message.error()}")
        read.append(message.value())
    check(read == [json_value(i) for i in range(count)], f"the reader read {len(read)} of {count}")
    consumer.commit(asynchronous=False)
    listed = set(consumer.list_topics(timeout=WAIT_S).topics)
    consumer.close()
    check(listed == {topic}, f"the reader sees {sorted(listed)}, not only {topic}")

    deleted = wait(admin.delete_acls([readers_acls]))[readers_acls]
    check(sorted(deleted) == sorted(granted), f"deleted {deleted}, not {granted}")
    check(not admin.describe_acls(readers_acls).result(timeout=WAIT_S), "ACLs left after deleting")
    listed = set(reader_admin.list_topics(timeout=WAIT_S).topics)
    check(not listed, f"without its ACLs the reader still sees {sorted(listed)}")
    print(
        f"ACLs created, described and deleted; the reader read {count} records in {group}, "
        f"was refused writing, and saw only {topic}"
    )


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


def idempotent_leader_kill(bootstrap, topic, count, pids, acknowledged_path):
    """An idempotent acks=all producer keeps sending while the partition leader is SIGKILLed.

    Writes every acknowledged (key, value) to acknowledged_path as JSON, for the test to check
    that each is stored exactly once and in per-key order.
    """
    count = int(count)
    pids = {int(node): pid for node, pid in json.loads(pids).items()}
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 2,
            "message.timeout.ms": 120_000,
        }
    )
    acknowledged, errors, killed = [], [], []

    def delivered(error, message):
        if error is not None:
            errors.append(str(error))
        else:
            acknowledged.append((message.key().decode(), message.value().decode()))

    for i in range(count):
        key = f"key-{i % 12}"
        producer.produce(topic, key=key, value=f"{key}:{i}", on_delivery=delivered)
        producer.poll(0)
        if i == count // 3:
            # Wait for what was sent so far, so the kill lands while records are in flight
            # after it and acknowledged records sit before it.
            check(producer.flush(WAIT_S) == 0, "records before the kill not delivered")
            leader = producer.list_topics(topic, timeout=WAIT_S).topics[topic].partitions[0].leader
            os.kill(pids[leader], signal.SIGKILL)
            killed.append(leader)
    check(producer.flush(120) == 0, "records not delivered after the leader kill")
    check(not errors, f"delivery errors: {errors[:3]}")
    check(len(acknowledged) == count, f"{len(acknowledged)} of {count} acknowledged")
    with open(acknowledged_path, "w") as out:
        json.dump(acknowledged, out)
    print(f"killed node {killed[0]}; {len(acknowledged)} records acknowledged")


# How members of each group protocol are configured. The classic protocol's rebalances are
# the client's (cooperative-sticky, with a short session); KIP-848's are the coordinator's,
# which also decides sessions and heartbeats, so librdkafka refuses those settings there.
GROUP_PROTOCOLS = {
    "classic": {
        "partition.assignment.strategy": "cooperative-sticky",
        "session.timeout.ms": 10_000,
        "heartbeat.interval.ms": 500,
    },
    "consumer": {"group.protocol": "consumer", "group.remote.assignor": "uniform"},
}


def shared_group(bootstrap, topic, partitions, group, protocol):
    """Members of a group share the partitions, rebalance as members come and go, and a new
    member resumes from the committed offsets; `protocol` is the group protocol they use."""
    partitions = int(partitions)
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(60 * partitions):
        producer.produce(topic, partition=i % partitions, value=f"v{i}".encode())
    check(producer.flush(WAIT_S) == 0, "records not delivered")

    def member(name):
        consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "client.id": name,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                **GROUP_PROTOCOLS[protocol],
            }
        )
        consumer.subscribe([topic])
        return consumer

    seen = {}

    def poll_until(members, what, condition):
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            for consumer in members:
                message = consumer.poll(0.05)
                if message is not None and not message.error():
                    seen[(message.partition(), message.offset())] = consumer
            if condition():
                return
        fail(f"timed out waiting for {what}: {[m.assignment() for m in members]}")

    def split_among(members):
        owned = [{tp.partition for tp in m.assignment()} for m in members]
        every = set().union(*owned)
        disjoint = sum(len(o) for o in owned) == len(every)
        return every == set(range(partitions)) and disjoint and all(owned)

    a, b = member("a"), member("b")
    poll_until([a, b], "two members sharing the partitions", lambda: split_among([a, b]))
    c = member("c")
    poll_until([a, b, c], "a third member getting partitions", lambda: split_among([a, b, c]))
    b.close()
    poll_until([a, c], "the partitions back with two members", lambda: split_among([a, c]))
    poll_until([a, c], "every record read", lambda: len(seen) >= 60 * partitions)
    for consumer in (a, c):
        consumer.commit(asynchronous=False)
        consumer.close()
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    committed = reader.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=WAIT_S)
    reader.close()
    check(all(tp.offset == 60 for tp in committed), f"committed {[(tp.partition, tp.offset) for tp in committed]}")

    producer.produce(topic, partition=0, value=b"after-restart")
    check(producer.flush(WAIT_S) == 0, "record not delivered")
    d = member("d")
    fresh = []
    deadline = time.monotonic() + WAIT_S
    while not fresh and time.monotonic() < deadline:
        message = d.poll(0.2)
        if message is not None and not message.error():
            fresh.append(message.value())
    d.close()
    check(fresh == [b"after-restart"], f"a restarted member read {fresh[:3]}, not only the new record")
    print(
        f"{protocol} protocol: {partitions} partitions shared by 2, then 3, then 2 members; "
        "offsets resumed after restart"
    )


def kafka_python_group(bootstrap, topic, group):
    """kafka-python members of one group share the partitions and commit.

    Each member polls on a thread of its own, as applications run them: kafka-python drives its
    group membership from poll(), and two members taking turns on one thread with short polls
    can leave a leader's SyncGroup answer unhandled until the next turn, so it rejoins.
    """
    import threading

    from kafka import KafkaConsumer

    members = [
        KafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        for _ in range(2)
    ]
    read = [0, 0]
    stop = threading.Event()

    def run(index):
        while not stop.is_set():
            batches = members[index].poll(timeout_ms=500)
            read[index] += sum(len(batch) for batch in batches.values())

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(2)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        owned = [consumer.assignment() for consumer in members]
        if all(owned) and not (owned[0] & owned[1]) and sum(read) > 0:
            break
        time.sleep(0.05)  # how often to look, not a guess at how long the group takes
    stop.set()
    for thread in threads:
        thread.join(WAIT_S)
    if not (all(owned) and not (owned[0] & owned[1]) and sum(read) > 0):
        fail(f"kafka-python members did not share the partitions: {owned}, read {read}")
    for consumer in members:
        consumer.commit()
        consumer.close()
    print(f"kafka-python: two members shared {len(owned[0] | owned[1])} partitions")


def admin(bootstrap):
    """confluent-kafka's AdminClient: create, describe configs, alter, add partitions, delete."""
    from confluent_kafka.admin import (
        AdminClient,
        AlterConfigOpType,
        ConfigEntry,
        ConfigResource,
        NewPartitions,
        NewTopic,
    )

    client = AdminClient({"bootstrap.servers": bootstrap})

    def wait(futures):
        return {key: future.result(timeout=WAIT_S) for key, future in futures.items()}

    wait(client.create_topics([NewTopic("managed", 2, 1, config={"retention.ms": "3600000"})]))
    try:
        wait(client.create_topics([NewTopic("managed", 2, 1)]))
        fail("creating an existing topic succeeded")
    except KafkaException as error:
        check(error.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS, f"got {error}")

    resource = ConfigResource(ConfigResource.Type.TOPIC, "managed")
    described = wait(client.describe_configs([resource]))[resource]
    check(described["retention.ms"].value == "3600000", f"retention.ms {described['retention.ms']}")
    check(not described["retention.ms"].is_default, "an override is not a default")
    check(described["cleanup.policy"].is_default if "cleanup.policy" in described else True, "defaults marked")

    alter = ConfigResource(
        ConfigResource.Type.TOPIC,
        "managed",
        incremental_configs=[
            ConfigEntry("retention.ms", "7200000", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    wait(client.incremental_alter_configs([alter]))
    described = wait(client.describe_configs([resource]))[resource]
    check(described["retention.ms"].value == "7200000", "incremental alter applied")

    wait(client.create_partitions([NewPartitions("managed", 4)]))
    partitions = client.list_topics("managed", timeout=WAIT_S).topics["managed"].partitions
    check(len(partitions) == 4, f"{len(partitions)} partitions after growing to 4")

    wait(client.delete_topics(["managed"]))
    deadline = time.monotonic() + WAIT_S
    while "managed" in client.list_topics(timeout=WAIT_S).topics:
        check(time.monotonic() < deadline, "the deleted topic is still listed")
        time.sleep(0.1)
    print("created, described, altered, grown and deleted through the AdminClient")


SCENARIOS = {
    "classic-group": lambda b, topic, partitions, group: shared_group(
        b, topic, partitions, group, "classic"
    ),
    "consumer-group": lambda b, topic, partitions, group: shared_group(
        b, topic, partitions, group, "consumer"
    ),
    "kafka-python-group": kafka_python_group,
    "admin": admin,
    "idempotent-leader-kill": idempotent_leader_kill,
    "roundtrip": lambda b, topic, partitions, count, codec: roundtrip(
        b, topic, int(partitions), int(count), codec
    ),
    "kafka-python-roundtrip": lambda b, topic, count, codec: kafka_python_roundtrip(
        b, topic, int(count), codec
    ),
    "positions": positions,
    "tls-roundtrip": tls_roundtrip,
    "sasl-roundtrip": sasl_roundtrip,
    "acls": acls,
    "errors": errors,
}

if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] not in SCENARIOS:
        fail(f"usage: scenarios.py {{{'|'.join(SCENARIOS)}}} BOOTSTRAP [ARGS...]")
    try:
        SCENARIOS[sys.argv[1]](*sys.argv[2:])
    except KafkaException as error:
        fail(f"Kafka client error: {error}")
