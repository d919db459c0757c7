#!/usr/bin/env bash
# Installs the Kafka clients the Kafka-listener tests drive, from the package registries:
# kcat from Debian, confluent-kafka (librdkafka inside) and kafka-python from PyPI into a venv
# of the project's own. Idempotent: what is already there is kept, so warm runs cost nothing.
#
#   tests/kafka-clients/install.sh VENV_DIR
#
# Prints `kcat=PATH` and `python=PATH` for what it could provide, and one `missing: ...` line
# (on stdout, for the test to repeat as its skip reason) for what it could not.
set -uo pipefail
venv="${1:?usage: install.sh VENV_DIR}"
# The versions the tests were written against; newer minor releases speak the same protocol.
# 2.10 is the first whose KIP-848 consumer (group.protocol=consumer) is generally available.
CONFLUENT_KAFKA="confluent-kafka>=2.10,<3"
KAFKA_PYTHON="kafka-python>=2.0.2,<4"

if ! command -v kcat >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        { DEBIAN_FRONTEND=noninteractive apt-get install -y -q kcat \
            || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q kcat; }; } \
            >"${venv%/}.kcat-install.log" 2>&1
    fi
fi
if command -v kcat >/dev/null 2>&1; then
    echo "kcat=$(command -v kcat)"
else
    echo "missing: kcat (Debian package kcat could not be installed; see ${venv%/}.kcat-install.log)"
fi

python="$venv/bin/python"
if [ ! -x "$python" ] || ! "$python" -c 'import confluent_kafka, kafka' >/dev/null 2>&1; then
    mkdir -p "$(dirname "$venv")"
    { python3 -m venv "$venv" && "$venv/bin/pip" install -q "$CONFLUENT_KAFKA" "$KAFKA_PYTHON"; } \
        >"${venv%/}.pip-install.log" 2>&1
fi
if [ -x "$python" ] && "$python" -c 'import confluent_kafka, kafka' >/dev/null 2>&1; then
    echo "python=$python"
else
    echo "missing: confluent-kafka and kafka-python (PyPI install failed; see ${venv%/}.pip-install.log)"
fi
