#!/usr/bin/env bash
# What ACL checks cost the broker: CPU seconds the broker process spends serving the same
# produce load, `strata bench produce` at a fixed 100,000 records/s of 1 KiB, as
#   - a super user (authenticated, every authorization check passes without reading the ACLs;
#     the baseline),
#   - an ordinary user whose Write comes from one binding among ACL_BINDINGS others, so every
#     produce request is checked against the applied ACLs.
# Both cases run against the same broker, taking turns within each run; the summary gives the
# medians of RUNS runs and the ACL case's CPU as a ratio to the same-run baseline.
#
#   benches/authorization.sh          # after `cargo build --release --locked -p strata-cli`
#   RUNS=5 RECORDS=500000 benches/authorization.sh
set -euo pipefail
cd "$(dirname "$0")/.."
STRATA=${STRATA:-${CARGO_TARGET_DIR:-target}/release/strata}
RUNS=${RUNS:-3}
RECORDS=${RECORDS:-500000}
RATE=${RATE:-100000}
ACL_BINDINGS=${ACL_BINDINGS:-200}
work=$(mktemp -d)
results="$work/results"
port=$((17000 + RANDOM % 1000))
B="--bootstrap 127.0.0.1:$port"

STRATA_BOOTSTRAP_USER=admin:admin-secret "$STRATA" server --node-id 1 --data-dir "$work/data" \
    --listen 127.0.0.1:$port --require-auth >"$work/broker.log" 2>&1 &
broker=$!
trap 'kill -TERM $broker 2>/dev/null; wait $broker 2>/dev/null; rm -rf "$work"' EXIT
ADMIN="$B --user admin --password admin-secret"
for _ in $(seq 1 150); do
    "$STRATA" topic list $ADMIN >/dev/null 2>&1 && break
    kill -0 "$broker" 2>/dev/null || { cat "$work/broker.log"; exit 1; }
    sleep 0.2
done
"$STRATA" user create writer --new-password writer-secret $ADMIN >/dev/null
# Bindings that match nothing the writer does, so each check walks past them.
for index in $(seq 1 "$ACL_BINDINGS"); do
    "$STRATA" acl create --principal "other-$index" --operation read --topic "other-$index" $ADMIN >/dev/null
done
"$STRATA" acl create --principal writer --operation write --topic acl-bench --prefixed $ADMIN >/dev/null

# Broker CPU seconds (user + system) so far.
cpu() { awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$broker/stat"; }

# measure CASE "CLIENT FLAGS": produce RECORDS records at RATE into a fresh topic.
measure() {
    local case=$1 client_flags=$2 topic="acl-bench-$1-$RANDOM"
    "$STRATA" topic create "$topic" --partitions 1 --replication-factor 1 $ADMIN >/dev/null
    local before after
    before=$(cpu)
    "$STRATA" bench produce --topic "$topic" --records "$RECORDS" --record-size 1024 --acks 1 \
        --no-idempotence --rate "$RATE" --json $B $client_flags >/dev/null
    after=$(cpu)
    echo "{\"case\": \"$case\", \"cpu_s\": $(python3 -c "print($after - $before)")}" >>"$results"
    "$STRATA" topic delete "$topic" $ADMIN >/dev/null
}

for _ in $(seq 1 "$RUNS"); do
    measure super-user "--user admin --password admin-secret"
    measure acl-checked "--user writer --password writer-secret"
done

python3 - "$results" "$RECORDS" "$RATE" <<'PY'
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    row = json.loads(line)
    runs.setdefault(row["case"], []).append(row["cpu_s"])
median = {case: statistics.median(values) for case, values in runs.items()}
base = median["super-user"]
print(f"{sys.argv[2]} records of 1 KiB at {sys.argv[3]} records/s, broker CPU seconds:")
for case, values in runs.items():
    print(f"{case:12} median {median[case]:6.2f} s  ({median[case] / base:.3f} of super-user)  runs {[round(v, 2) for v in values]}")
PY
