#!/usr/bin/env bash
# What metrics cost, on one broker with PARTITIONS partitions (default 10,000, in topics of 100):
#   - how long `/metrics` takes to answer (curl's total time, SCRAPES scrapes, median and max);
#   - produce throughput (`strata bench produce`, 1 KiB records, acks=1) with a scraper reading
#     `/metrics` every INTERVAL seconds (default 5, as deploy/prometheus.yml scrapes) against
#     the same produce without one, the two taking turns,
#     RUNS times each; the summary gives medians and the scraped case as a ratio to the
#     same-run baseline.
#
#   benches/metrics.sh               # after `cargo build --release --locked -p strata-cli`
#   PARTITIONS=10000 RUNS=5 RECORDS=500000 benches/metrics.sh
set -euo pipefail
cd "$(dirname "$0")/.."
STRATA=${STRATA:-${CARGO_TARGET_DIR:-target}/release/strata}
PARTITIONS=${PARTITIONS:-10000}
SCRAPES=${SCRAPES:-20}
RUNS=${RUNS:-3}
RECORDS=${RECORDS:-300000}
INTERVAL=${INTERVAL:-5}
work=$(mktemp -d)
port=$((17000 + RANDOM % 1000))
http=$((18000 + RANDOM % 1000))
B="--bootstrap 127.0.0.1:$port"
# Each partition keeps its segment, index and time-index files open: 10,000 partitions need more
# than the 20,000 files many machines allow. The broker raises its soft limit to the hard one;
# only a process with CAP_SYS_RESOURCE raises the hard one (as operators are told to for Kafka).
wanted=$((PARTITIONS * 3 + 1024))
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$wanted" ]; then
    if ! { ulimit -Hn "$wanted" 2>/dev/null && ulimit -n "$wanted"; }; then
        echo "error: $PARTITIONS partitions need about $wanted open files; the hard limit here is" \
            "$hard and this shell cannot raise it (set PARTITIONS lower)" >&2
        exit 1
    fi
fi
"$STRATA" server --node-id 1 --data-dir "$work/data" --listen 127.0.0.1:$port \
    --http-listen 127.0.0.1:$http >"$work/broker.log" 2>&1 &
broker=$!
scraper=
trap 'status=$?; [ -z "$scraper" ] || kill $scraper 2>/dev/null; kill -TERM $broker 2>/dev/null; wait $broker 2>/dev/null; rm -rf "$work"; exit $status' EXIT
for _ in $(seq 1 150); do
    curl -sf "http://127.0.0.1:$http/ready" >/dev/null && break
    kill -0 "$broker" 2>/dev/null || { cat "$work/broker.log"; exit 1; }
    sleep 0.2
done

topics=$(( (PARTITIONS + 99) / 100 ))
for index in $(seq 1 "$topics"); do
    "$STRATA" topic create "wide-$index" --partitions 100 --replication-factor 1 $B >/dev/null
done
series=$(curl -sf "http://127.0.0.1:$http/metrics" | grep -c '^strata_partition_high_watermark{')
echo "partitions on the broker: $series"

for _ in $(seq 1 "$SCRAPES"); do
    curl -sf -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$http/metrics"
done >"$work/scrapes"
python3 - "$work/scrapes" <<'PY'
import statistics, sys
times = [float(line) * 1000 for line in open(sys.argv[1])]
print(f"/metrics: median {statistics.median(times):.1f} ms, max {max(times):.1f} ms over {len(times)} scrapes")
PY

"$STRATA" topic create bench --partitions 1 --replication-factor 1 $B >/dev/null
produce() {
    "$STRATA" bench produce --topic bench --records "$RECORDS" --record-size 1024 --acks 1 \
        --no-idempotence --json $B | python3 -c \
        "import json,sys; print(json.load(sys.stdin)['records_per_sec'])"
}
for _ in $(seq 1 "$RUNS"); do
    echo "unscraped $(produce)" >>"$work/produce"
    ( while true; do curl -sf -o /dev/null "http://127.0.0.1:$http/metrics"; sleep "$INTERVAL"; done ) &
    scraper=$!
    echo "scraped $(produce)" >>"$work/produce"
    kill $scraper; wait $scraper 2>/dev/null || true
    scraper=
done
python3 - "$work/produce" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    case, value = line.split()
    runs.setdefault(case, []).append(float(value))
base = statistics.median(runs["unscraped"])
for case, values in runs.items():
    median = statistics.median(values)
    print(f"produce {case:10} median {median:>10,.0f} records/s ({median / base:.2f} of unscraped) runs {[round(v) for v in values]}")
PY
