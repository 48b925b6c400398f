#!/usr/bin/env bash
# Runs a command (the test suite) with PostgreSQL and Kafka reachable: starts each
# with its deploy/local script unless something already listens on its port, exports
# their addresses for the tests, and stops afterwards only what it started.
set -euo pipefail
cd "$(dirname "$0")/../.."
KAFKA_PORT=${KAFKA_PORT:-9092}
PGPORT=${PGPORT:-5433}
export KAFKA_PORT PGPORT

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

started=()
cleanup() {
  local status=$?
  for script in "${started[@]}"; do "deploy/local/$script.sh" stop || true; done
  exit "$status"
}
trap cleanup EXIT INT TERM

if ! listening "$PGPORT"; then
  deploy/local/postgres.sh start
  started+=(postgres)
fi
if ! listening "$KAFKA_PORT"; then
  deploy/local/kafka.sh start
  started+=(kafka)
fi

export VITALS_TEST_KAFKA_BOOTSTRAP="127.0.0.1:$KAFKA_PORT"
export VITALS_TEST_POSTGRES_URL="postgresql+asyncpg://vitals@127.0.0.1:$PGPORT/postgres"
"$@"
