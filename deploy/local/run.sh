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
# Its page of Stripe customers with no account reads ingest's API.
export VITALS_CONSOLE_INGEST_URL=${VITALS_CONSOLE_INGEST_URL:-http://127.0.0.1:8001}
# A development signing secret, so that /v1/stripe/webhook takes the signed example below
# (without one it answers 503 stripe_not_configured). Stripe's dashboard gives the real one.
export VITALS_INGEST_STRIPE_WEBHOOK_SECRETS=${VITALS_INGEST_STRIPE_WEBHOOK_SECRETS:-whsec_local_development}
STRIPE_SECRET=${VITALS_INGEST_STRIPE_WEBHOOK_SECRETS%%,*}
# The broker's KRaft controller port, as deploy/local/kafka.sh picks it by default (its
# server.properties says which, once the broker has run).
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT <= 64535 ? KAFKA_PORT + 1000 : KAFKA_PORT - 1000))}
KAFKA_PROPERTIES=${VITALS_VAR_DIR:-var}/kafka/$KAFKA_PORT/server.properties
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
# Ctrl-C is a normal way to stop: the services are stopped in order and make sees 0.
trap 'exit 0' INT TERM

if ! deploy/local/kafka.sh status >/dev/null 2>&1; then
  deploy/local/kafka.sh start
  started_kafka=yes
fi

controller=$(sed -n 's/^controller.quorum.bootstrap.servers=127.0.0.1:\([0-9]*\)$/\1/p' \
  "$KAFKA_PROPERTIES" 2>/dev/null || true)
KAFKA_CONTROLLER_PORT=${controller:-$KAFKA_CONTROLLER_PORT}

"$BIN/vitals" migrate
for service in ingest scoring alerts console; do
  # A session of its own: Ctrl-C reaches this script alone, which then stops the
  # services (a service stopping by itself first would read as a failure).
  setsid "$BIN/vitals" serve "$service" >"var/log/$service.log" 2>&1 &
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
  Kafka    127.0.0.1:$KAFKA_PORT  (KRaft controller on 127.0.0.1:$KAFKA_CONTROLLER_PORT)

Try it:
  curl -sS -X POST http://127.0.0.1:8001/v1/events -H 'content-type: application/json' \\
    -d '{"account_id": "acme", "kind": "usage", "name": "report.exported", "user_id": "u1",
         "occurred_at": "'"\$(date -u +%Y-%m-%dT%H:%M:%SZ)"'"}'
  curl -sS http://127.0.0.1:8002/v1/accounts/acme
  then open http://127.0.0.1:8004/accounts/acme

A Stripe webhook, signed with the development secret (VITALS_INGEST_STRIPE_WEBHOOK_SECRETS=$STRIPE_SECRET):
  t=\$(date +%s)
  body='{"id": "evt_local_'\$t'", "object": "event", "type": "customer.subscription.updated",
    "created": '\$t', "data": {"object": {"id": "sub_local", "object": "subscription",
    "customer": "cus_local", "status": "active", "currency": "usd",
    "metadata": {"vitals_account_id": "acme"}, "items": {"object": "list", "data": [
      {"price": {"currency": "usd", "unit_amount": 5000,
                 "recurring": {"interval": "month", "interval_count": 1}}, "quantity": 12}]}}}}'
  sig=\$(printf '%s.%s' "\$t" "\$body" | openssl dgst -sha256 -hmac '$STRIPE_SECRET' -r | cut -d' ' -f1)
  curl -sS -X POST http://127.0.0.1:8001/v1/stripe/webhook -H 'content-type: application/json' \\
    -H "Stripe-Signature: t=\$t,v1=\$sig" --data-binary "\$body"

Press Ctrl-C to stop.
MSG
wait -n "${pids[@]}"
echo "A service exited; see var/log/*.log" >&2
exit 1
