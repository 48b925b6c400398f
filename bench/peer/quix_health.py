"""The peer: Vitals' first health score written with Quix Streams, for `make bench`.

Runs in its own virtualenv (`.venv-peer`, made by `make bench`), so Quix Streams'
pins do not touch Vitals'. Same input topic and records as Vitals' scoring service,
same aggregation (per-account daily event counts, distinct users over 30 days, seats
and subscription status from billing events), a score recomputed on every update and
produced only when it changed. State lives in Quix's RocksDB store with changelog
topics; the processing guarantee and commit interval are arguments so the two
systems run with matching settings.

    .venv-peer/bin/python bench/peer/quix_health.py --topic T --group G --out T2
"""

from __future__ import annotations

import argparse
import time
from datetime import date, datetime, timedelta
from typing import Any

from quixstreams import Application, State

WINDOW_DAYS = 30
WEIGHTS = {"engagement": 0.4, "recency": 0.3, "billing": 0.3}
BILLING_SCORES = {
    "active": 100,
    "trialing": 80,
    "past_due": 40,
    "paused": 30,
    "unpaid": 10,
    "canceled": 0,
}


def update(event: dict[str, Any], state: State) -> dict[str, Any] | None:
    """Fold one event into the account's state; the new score when it changed."""
    occurred = datetime.fromisoformat(event["occurred_at"])
    day = occurred.date().isoformat()
    if event["kind"] == "usage":
        days: dict[str, int] = state.get("days", {})
        days[day] = days.get(day, 0) + 1
        users: dict[str, str] = state.get("users", {})
        if user := event.get("user_id"):
            users[user] = max(users.get(user, day), day)
        cutoff = (occurred.date() - timedelta(days=WINDOW_DAYS)).isoformat()
        state.set("days", {d: n for d, n in days.items() if d > cutoff})
        state.set("users", {u: d for u, d in users.items() if d > cutoff})
        last = state.get("last_usage", "")
        state.set("last_usage", max(last, event["occurred_at"]))
    billing = event.get("billing") or {}
    if billing.get("seats") is not None:
        state.set("seats", billing["seats"])
    if billing.get("subscription_status"):
        state.set("status", billing["subscription_status"])
    score = _score(state, occurred)
    if score == state.get("score"):
        return None
    state.set("score", score)
    return {"account_id": event["account_id"], "health_score": score}


def _score(state: State, as_of: datetime) -> int | None:
    parts: dict[str, float] = {}
    cutoff = (as_of.date() - timedelta(days=WINDOW_DAYS)).isoformat()
    active = sum(1 for d in state.get("users", {}).values() if d > cutoff)
    seats = state.get("seats")
    if seats and active:
        parts["engagement"] = min(1.0, active / seats) * 100
    if last := state.get("last_usage"):
        idle = max(0.0, (as_of - datetime.fromisoformat(last)).total_seconds() / 86400)
        parts["recency"] = max(0.0, 1 - idle / WINDOW_DAYS) * 100
    if status := state.get("status"):
        parts["billing"] = BILLING_SCORES[status]
    if not parts:
        return None
    weight = sum(WEIGHTS[name] for name in parts)
    return round(sum(WEIGHTS[name] * value for name, value in parts.items()) / weight)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--broker", default="127.0.0.1:9092")
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--state-dir", default="var/bench/quix-state")
    parser.add_argument("--guarantee", choices=["at-least-once", "exactly-once"])
    parser.add_argument("--commit-interval", type=float, default=1.0)
    parser.add_argument("--idle-stop-s", type=float, default=5.0)
    args = parser.parse_args()
    app = Application(
        broker_address=args.broker,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        commit_interval=args.commit_interval,
        processing_guarantee=args.guarantee or "at-least-once",
        state_dir=args.state_dir,
        loglevel="WARNING",
    )
    source = app.topic(args.topic, value_deserializer="json", key_deserializer="str")
    sink = app.topic(args.out, value_serializer="json", key_serializer="str")
    scores = app.dataframe(source).apply(update, stateful=True).filter(lambda v: v is not None)
    scores.to_topic(sink)
    started = time.monotonic()
    app.run(timeout=args.idle_stop_s)
    print(f"peer stopped after {time.monotonic() - started:.1f}s ({date.today()})", flush=True)


if __name__ == "__main__":
    main()
