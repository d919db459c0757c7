#!/usr/bin/env bash
# Builds `strata` and the `strata:latest` image (offline, see build-image.sh), starts the
# three-node cluster of deploy/docker-compose.yml and waits until every node is healthy.
#
#   deploy/up.sh                    # cargo build --release, image, cluster
#   deploy/up.sh --binary PATH      # use an existing strata binary instead of building one
#
# Stop it, keeping the data:  docker-compose -f deploy/docker-compose.yml stop
# Tear it down with the data: docker-compose -f deploy/docker-compose.yml down -v
set -euo pipefail

deploy="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
case "${1:-}" in
    -h|--help) sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac

if command -v docker-compose >/dev/null; then
    compose=(docker-compose)
elif docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
else
    echo "error: neither docker-compose nor the docker compose plugin is installed" >&2
    exit 1
fi
compose+=(-f "$deploy/docker-compose.yml")

"$deploy/build-image.sh" "$@"
"${compose[@]}" up -d --no-build

echo "waiting for the three nodes to become healthy (at most 3 minutes)..."
deadline=$((SECONDS + 180))
while :; do
    states="$(docker inspect --format '{{.State.Health.Status}}' $("${compose[@]}" ps -q))"
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

cat <<MESSAGE
Strata is running: three nodes on 127.0.0.1:7070, 127.0.0.1:7071 and 127.0.0.1:7072.

  export STRATA_BOOTSTRAP=127.0.0.1:7070,127.0.0.1:7071,127.0.0.1:7072
  strata cluster status
  strata topic create orders --partitions 3 --replication-factor 3 --config min.insync.replicas=2
  printf 'alice:book\nbob:pen\n' | strata produce orders --key-separator :
  strata consume orders --from-beginning --max-messages 2

(strata is target/release/strata, or: docker run --rm --network host strata:latest ...)
Logs:      ${compose[*]} logs -f
Tear down: ${compose[*]} down -v
MESSAGE
