#!/usr/bin/env bash
# What TLS and authentication cost, on one broker, in one run: `strata bench produce` and
# `strata bench consume` with 1 KiB records against
#   - plaintext (the baseline),
#   - TLS on the client listener,
#   - TLS plus --require-auth (every gRPC call carries Basic credentials).
# Each run starts one broker per configuration; the configurations take turns within a run. The
# summary gives medians of RUNS runs and each figure as a ratio to its same-run baseline.
#
#   benches/security.sh              # after `cargo build --release --locked -p strata-cli`
#   RUNS=5 RECORDS=1000000 benches/security.sh
set -euo pipefail
cd "$(dirname "$0")/.."
STRATA=${STRATA:-${CARGO_TARGET_DIR:-target}/release/strata}
RUNS=${RUNS:-3}
RECORDS=${RECORDS:-500000}
SIZE=1024
work=$(mktemp -d)
results="$work/results"
"$STRATA" certs create --out "$work/certs" >/dev/null
TLS_SERVER="--tls-cert $work/certs/node-1.pem --tls-key $work/certs/node-1-key.pem --tls-ca $work/certs/ca.pem"
TLS_CLIENT="--tls-ca $work/certs/ca.pem"
AUTH_CLIENT="--user bench --password bench-secret"

# run CASE "SERVER FLAGS" "CLIENT FLAGS": one broker, produce then replay RECORDS records.
run() {
    local case=$1 server_flags=$2 client_flags=$3
    local data="$work/data-$case" port=$((17000 + RANDOM % 1000))
    STRATA_BOOTSTRAP_USER=bench:bench-secret "$STRATA" server --node-id 1 --data-dir "$data" \
        --listen 127.0.0.1:$port $server_flags >"$data.log" 2>&1 &
    local broker=$!
    local B="--bootstrap 127.0.0.1:$port $client_flags"
    for _ in $(seq 1 150); do
        "$STRATA" topic list $B >/dev/null 2>&1 && break
        kill -0 "$broker" 2>/dev/null || { cat "$data.log"; exit 1; }
        sleep 0.2
    done
    "$STRATA" topic create bench --partitions 1 --replication-factor 1 $B >/dev/null
    "$STRATA" bench produce --topic bench --records "$RECORDS" --record-size $SIZE --acks 1 \
        --no-idempotence --keep --json $B | python3 -c \
        "import json,sys; r=json.load(sys.stdin); print(json.dumps({'case':'produce $case','records_per_s':r['records_per_sec']}))" >>"$results"
    "$STRATA" bench consume --topic bench --records "$RECORDS" --json $B | python3 -c \
        "import json,sys; r=json.load(sys.stdin); print(json.dumps({'case':'consume $case','records_per_s':r['records_per_sec']}))" >>"$results"
    kill -TERM "$broker"; wait "$broker" || true
    rm -rf "$data" "$data.log"
}

for _ in $(seq 1 "$RUNS"); do
    run plaintext "" ""
    run tls "$TLS_SERVER" "$TLS_CLIENT"
    run tls+auth "$TLS_SERVER --require-auth" "$TLS_CLIENT $AUTH_CLIENT"
done

python3 - "$results" <<'PY'
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    row = json.loads(line)
    runs.setdefault(row["case"], []).append(row["records_per_s"])
median = {case: statistics.median(values) for case, values in runs.items()}
for case, values in runs.items():
    base = case.split()[0] + " plaintext"
    print(f"{case:24} median {median[case]:>10,.0f} records/s  ({median[case] / median[base]:.2f} of {base})  runs {values}")
PY
rm -rf "$work"
