#!/usr/bin/env bash
# `make run`: a local Kafka broker, the three services on SQLite files in var/, and
# the console over them.
# Ctrl-C stops everything this script started.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${VENV:-.venv}/bin
KAFKA_PORT=${KAFKA_PORT:-9092}
export VITALS_KAFKA_BOOTSTRAP_SERVERS=${VITALS_KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:$KAFKA_PORT}
export VITALS_INGEST_DATABASE_URL=${VITALS_INGEST_DATABASE_URL:-sqlite+aiosqlite:///var/ingest.db}
export VITALS_SCORING_DATABASE_URL=${VITALS_SCORING_DATABASE_URL:-sqlite+aiosqlite:///var/scoring.db}
export VITALS_ALERTS_DATABASE_URL=${VITALS_ALERTS_DATABASE_URL:-sqlite+aiosqlite:///var/alerts.db}
# The console's Backtest page shows `make backtest`'s report once there is one.
export VITALS_CONSOLE_BACKTEST_REPORT=${VITALS_CONSOLE_BACKTEST_REPORT:-var/backtest/report.json}
export VITALS_CONSOLE_BACKTEST_CHART=${VITALS_CONSOLE_BACKTEST_CHART:-var/backtest/report.png}
mkdir -p var/log

pids=()
started_kafka=no
stop_all() {
  trap - INT TERM EXIT
  echo
  echo "Stopping the services..."
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait "${pids[@]}" 2>/dev/null || true
  if [ "$started_kafka" = yes ]; then deploy/local/kafka.sh stop; fi
  echo "Stopped. Data stays in var/ ('make clean' deletes it)."
}
trap stop_all EXIT
trap 'exit 0' INT TERM

if ! deploy/local/kafka.sh status >/dev/null 2>&1; then
  deploy/local/kafka.sh start
  started_kafka=yes
fi

"$BIN/vitals" migrate
for service in ingest scoring alerts console; do
  "$BIN/vitals" serve "$service" >"var/log/$service.log" 2>&1 &
  pids+=($!)
done

ready() { curl -fsS "http://127.0.0.1:$1/readyz" >/dev/null 2>&1; }
for port in 8001 8002 8003 8004; do
  for _ in $(seq 1 120); do
    ready "$port" && break
    sleep 0.5
  done
  if ! ready "$port"; then
    echo "The service on port $port is not ready; see var/log/*.log. It says:" >&2
    curl -sS "http://127.0.0.1:$port/readyz" >&2 || true
    exit 1
  fi
done

cat <<MSG

Vitals is running (logs in var/log/):
  ingest   http://127.0.0.1:8001/docs
  scoring  http://127.0.0.1:8002/docs
  alerts   http://127.0.0.1:8003/docs
  console  http://127.0.0.1:8004/  (keys are not checked here: any name and key sign in)
  Kafka    127.0.0.1:$KAFKA_PORT

Try it:
  curl -sS -X POST http://127.0.0.1:8001/v1/events -H 'content-type: application/json' \\
    -d '{"account_id": "acme", "kind": "usage", "name": "report.exported", "user_id": "u1",
         "occurred_at": "'"\$(date -u +%Y-%m-%dT%H:%M:%SZ)"'"}'
  curl -sS http://127.0.0.1:8002/v1/accounts/acme
  then open http://127.0.0.1:8004/accounts/acme

Press Ctrl-C to stop.
MSG
wait -n "${pids[@]}"
echo "A service exited; see var/log/*.log" >&2
exit 1
