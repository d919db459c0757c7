#!/usr/bin/env bash
# Installs Prometheus, which the metrics test scrapes a real cluster with, from Debian's
# packages. Idempotent: an installed prometheus is kept, so warm runs cost nothing.
#
#   tests/prometheus/install.sh LOG_DIR
#
# Prints `prometheus=PATH` when it is there, or one `missing: ...` line (on stdout, for the test
# to repeat as its skip reason).
set -uo pipefail
logs="${1:?usage: install.sh LOG_DIR}"
mkdir -p "$logs"
if ! command -v prometheus >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus \
            || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus; }; } \
            >"$logs/prometheus-install.log" 2>&1
        # The package starts a system Prometheus on :9090; the test runs its own.
        { systemctl stop prometheus || service prometheus stop; } >/dev/null 2>&1 || true
    fi
fi
if command -v prometheus >/dev/null 2>&1; then
    echo "prometheus=$(command -v prometheus)"
else
    echo "missing: prometheus (Debian package prometheus could not be installed; see $logs/prometheus-install.log)"
fi
