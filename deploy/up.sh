#!/usr/bin/env bash
# Builds `strata` and the `strata:latest` image (offline, see build-image.sh), starts the
# three-node cluster of deploy/docker-compose.yml and waits until every node is healthy.
#
#   deploy/up.sh                    # cargo build --release, image, cluster
#   deploy/up.sh --binary PATH      # use an existing strata binary instead of building one
#   deploy/up.sh --secure           # docker-compose.secure.yml: TLS everywhere; CA to ./ca.pem
#
# Stop it, keeping the data:  docker-compose -f deploy/docker-compose.yml stop
# Tear it down with the data: docker-compose -f deploy/docker-compose.yml down -v
set -euo pipefail

deploy="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
secure=""
build_args=()
for argument in "$@"; do
    case "$argument" in
        -h|--help) sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        --secure) secure=1 ;;
        *) build_args+=("$argument") ;;
    esac
done

if command -v docker-compose >/dev/null; then
    compose=(docker-compose)
elif docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
else
    echo "error: neither docker-compose nor the docker compose plugin is installed" >&2
    exit 1
fi
if [ -n "$secure" ]; then
    compose+=(-p strata-secure -f "$deploy/docker-compose.secure.yml")
else
    compose+=(-f "$deploy/docker-compose.yml")
fi

"$deploy/build-image.sh" "${build_args[@]}"
"${compose[@]}" up -d --no-build

echo "waiting for the three nodes to become healthy (at most 3 minutes)..."
deadline=$((SECONDS + 180))
while :; do
    states="$(docker inspect --format '{{.State.Health.Status}}' $("${compose[@]}" ps -q strata-1 strata-2 strata-3))"
    if [ "$(grep -c '^healthy$' <<<"$states")" -eq 3 ]; then
        break
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
        echo "error: the nodes are not all healthy after 3 minutes:" $states >&2
        echo "see: ${compose[*]} logs" >&2
        exit 1
    fi
    sleep 1
done

if [ -n "$secure" ]; then
    docker cp "$("${compose[@]}" ps -q strata-1)":/certs/ca.pem ca.pem
    cat <<MESSAGE
Strata is running with TLS on every listener: three nodes on 127.0.0.1:7070-7072 (Kafka:
9092-9094). The cluster's development CA is in ./ca.pem.
Web console: https://localhost:8080/ (sign in as admin; the browser must trust ./ca.pem);
metrics: https://localhost:8080-8082/metrics

  export STRATA_BOOTSTRAP=127.0.0.1:7070,127.0.0.1:7071,127.0.0.1:7072 STRATA_TLS_CA=\$PWD/ca.pem
  export STRATA_USER=admin STRATA_PASSWORD=\${STRATA_ADMIN_PASSWORD:-admin-secret}
  strata cluster status
  kcat -b 127.0.0.1:9092 -X security.protocol=sasl_ssl -X ssl.ca.location=ca.pem \\
    -X sasl.mechanisms=SCRAM-SHA-512 -X sasl.username=admin -X sasl.password=\$STRATA_PASSWORD -L

Logs:      ${compose[*]} logs -f
Tear down: ${compose[*]} down -v
MESSAGE
    exit 0
fi

cat <<MESSAGE
Strata is running: three nodes on 127.0.0.1:7070, 127.0.0.1:7071 and 127.0.0.1:7072.
Web console: http://127.0.0.1:8080/; metrics: http://127.0.0.1:8080-8082/metrics

  export STRATA_BOOTSTRAP=127.0.0.1:7070,127.0.0.1:7071,127.0.0.1:7072
  strata cluster status
  strata topic create orders --partitions 3 --replication-factor 3 --config min.insync.replicas=2
  printf 'alice:book\nbob:pen\n' | strata produce orders --key-separator :
  strata consume orders --from-beginning --max-messages 2

(strata is target/release/strata, or: docker run --rm --network host strata:latest ...)
Logs:      ${compose[*]} logs -f
Tear down: ${compose[*]} down -v
MESSAGE
