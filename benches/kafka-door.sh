#!/usr/bin/env bash
# The Kafka listener against Strata's own Rust client, on one broker, in one run:
#   - produce and replay 1 KiB records: `strata bench` (gRPC, the baseline), kcat and
#     confluent-kafka through the Kafka listener;
#   - confluent-kafka producing compressible JSON-like values uncompressed (the baseline), with
#     zstd and with lz4.
# Each run starts a fresh broker and data directory and the binaries take turns within it;
# the summary gives medians of RUNS runs and each figure as a ratio to its same-run baseline.
#
#   benches/kafka-door.sh            # after `cargo build --release --locked -p strata-cli`
#   RUNS=5 RECORDS=1000000 benches/kafka-door.sh
#
# Needs kcat and a venv with confluent-kafka: `tests/kafka-clients/install.sh VENV` makes both.
set -euo pipefail
cd "$(dirname "$0")/.."
STRATA=${STRATA:-${CARGO_TARGET_DIR:-target}/release/strata}
VENV=${VENV:-target/kafka-clients-venv}
RUNS=${RUNS:-3}
RECORDS=${RECORDS:-500000}
SIZE=1024
tests/kafka-clients/install.sh "$VENV" >/dev/null
PYTHON="$VENV/bin/python"
results=$(mktemp)
lines=$(mktemp)
# kcat sends one record per line: SIZE - 1 bytes of text and the newline it strips.
"$PYTHON" -c "import os,sys,base64; l=base64.b64encode(os.urandom($SIZE))[:$SIZE-1]+b'\n'; sys.stdout.buffer.write(l*$RECORDS)" >"$lines"

seconds() { "$PYTHON" -c 'import sys,time; print(time.monotonic())'; }

for run in $(seq 1 "$RUNS"); do
    data=$(mktemp -d)
    port=$((17000 + RANDOM % 1000)); kafka=$((port + 2000))
    "$STRATA" server --node-id 1 --data-dir "$data" --listen 127.0.0.1:$port \
        --kafka-listen 127.0.0.1:$kafka >"$data.log" 2>&1 &
    broker=$!
    for _ in $(seq 1 150); do
        "$STRATA" topic list --bootstrap 127.0.0.1:$port >/dev/null 2>&1 && break
        kill -0 "$broker" 2>/dev/null || { cat "$data.log"; exit 1; }
        sleep 0.2
    done
    B="--bootstrap 127.0.0.1:$port"
    for topic in grpc kcat confluent json-none json-zstd json-lz4; do
        "$STRATA" topic create "$topic" --partitions 1 --replication-factor 1 $B >/dev/null
    done

    "$STRATA" bench produce --topic grpc --records "$RECORDS" --record-size $SIZE --acks 1 \
        --no-idempotence --keep --json $B | "$PYTHON" -c \
        "import json,sys; r=json.load(sys.stdin); print(json.dumps({'case':'produce grpc','records_per_s':r['records_per_sec']}))" >>"$results"
    start=$(seconds)
    kcat -b 127.0.0.1:$kafka -P -t kcat -X acks=1 -X linger.ms=5 -X batch.size=1000000 \
        -X queue.buffering.max.messages=1000000 <"$lines"
    end=$(seconds)
    echo "{\"case\":\"produce kcat\",\"records_per_s\":$("$PYTHON" -c "print(round($RECORDS/($end-$start)))")}" >>"$results"
    "$PYTHON" benches/kafka_door.py produce 127.0.0.1:$kafka confluent "$RECORDS" $SIZE none random |
        sed 's/^{/{"case":"produce confluent-kafka",/' >>"$results"

    "$STRATA" bench consume --topic grpc --records "$RECORDS" --json $B | "$PYTHON" -c \
        "import json,sys; r=json.load(sys.stdin); print(json.dumps({'case':'consume grpc','records_per_s':r['records_per_sec']}))" >>"$results"
    start=$(seconds)
    kcat -b 127.0.0.1:$kafka -C -t kcat -o beginning -e -q -c "$RECORDS" >/dev/null
    end=$(seconds)
    echo "{\"case\":\"consume kcat\",\"records_per_s\":$("$PYTHON" -c "print(round($RECORDS/($end-$start)))")}" >>"$results"
    "$PYTHON" benches/kafka_door.py consume 127.0.0.1:$kafka confluent "$RECORDS" |
        sed 's/^{/{"case":"consume confluent-kafka",/' >>"$results"

    for codec in none zstd lz4; do
        "$PYTHON" benches/kafka_door.py produce 127.0.0.1:$kafka "json-$codec" "$RECORDS" $SIZE "$codec" json |
            sed "s/^{/{\"case\":\"produce json $codec\",/" >>"$results"
    done
    kill -TERM "$broker"; wait "$broker" || true
    rm -rf "$data" "$data.log"
done

"$PYTHON" - "$results" <<'EOF'
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    row = json.loads(line)
    runs.setdefault(row["case"], []).append(row["records_per_s"])
median = {case: statistics.median(values) for case, values in runs.items()}
baseline = {"produce": "produce grpc", "consume": "consume grpc", "produce json": "produce json none"}
for case, values in runs.items():
    base = baseline["produce json" if case.startswith("produce json") else case.split()[0]]
    print(f"{case:28} median {median[case]:>10,.0f} records/s  ({median[case] / median[base]:.2f} of {base})  runs {values}")
EOF
rm -f "$results" "$lines"
