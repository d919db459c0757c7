"""A Strata producer and consumer in Python over gRPC, with no Kafka codec and no routing:
any broker takes the records and passes each partition's part to its leader.

    python -m grpc_tools.protoc -I proto --python_out=. --grpc_python_out=. proto/strata.proto
    python example.py 127.0.0.1:7070 orders
"""
import sys

import grpc
import strata_pb2 as pb
import strata_pb2_grpc as rpc

bootstrap, topic = sys.argv[1], sys.argv[2]
records = rpc.RecordsStub(grpc.insecure_channel(bootstrap))

sent = records.Produce(
    pb.ProduceRecordsRequest(
        topic=topic,
        acks=-1,  # every in-sync replica has them before the answer
        timeout_ms=10_000,
        records=[
            pb.ProducedRecord(key=b"alice", value=b"book", headers=[pb.RecordHeader(key="source", value=b"web")]),
            pb.ProducedRecord(key=b"alice", value=b"lamp"),  # same key, same partition, in order
            pb.ProducedRecord(key=b"bob", value=b"pen"),
        ],
    )
)
for result in sent.results:
    if result.error_code:
        sys.exit(f"not written: {result.error_message}")
    print(f"written to partition {result.partition} at offset {result.offset}")

partition = sent.results[0].partition
offset = -2  # from the start of the partition
while True:
    fetched = records.Fetch(pb.FetchRecordsRequest(topic=topic, partition=partition, offset=offset, max_wait_ms=500))
    if fetched.error_code:
        sys.exit(f"fetch failed: {fetched.error_message}")
    for record in fetched.records:
        headers = {header.key: header.value.decode() for header in record.headers}
        print(f"read {record.key.decode()}={record.value.decode()} at offset {record.offset} {headers}")
    if fetched.next_offset >= fetched.high_watermark:
        break
    offset = fetched.next_offset
