"""Channels, routes and rules are parsed once per change: the next batch after a change
made through the API (on any replica) sees it, even a second change in the same clock
instant, and nothing is parsed again while nothing changes."""

from datetime import UTC, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from services.alerts import configuration, repository
from services.alerts.configuration import FileConfig, Setup, SetupCache, load_files
from services.alerts.settings import AlertsSettings
from shared.db import SessionFactory
from shared.scores import Risk, ScoreChange
from tests.integration.alerts.conftest import ADMIN, AlertsStack, StackFactory
from tests.support.alerts_messages import enriched_change, facts
from tests.support.alerts_receivers import HttpReceiver
from tests.support.servers import serve, wait_for


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[Setup]:
    """Every setup parsed from here on, in order."""
    parsed: list[Setup] = []
    parse = configuration.load_setup

    async def counted(session: AsyncSession, files: FileConfig) -> Setup:
        setup = await parse(session, files)
        parsed.append(setup)
        return setup

    monkeypatch.setattr(configuration, "load_setup", counted)
    return parsed


def risky(stack: AlertsStack, account_id: str) -> ScoreChange:
    return enriched_change(
        account_id=account_id,
        risk=Risk.high,
        computed_at=stack.clock.now,
        account=facts(last_usage_at=stack.clock.now),
    )


def webhooks(url: str, *ids: str) -> dict[str, object]:
    return {"channels": [{"id": i, "kind": "webhook", "url": f"{url}/{i}"} for i in ids]}


async def _told(receiver: HttpReceiver, expected: set[tuple[str, str]]) -> bool:
    """Whether the receiver got exactly ``expected`` (path, account) notices so far."""
    told = {(r.path, r.json()["account_id"]) for r in receiver.requests}
    assert told <= expected, told
    return told == expected


@pytest.mark.kafka
@pytest.mark.postgres
async def test_a_channel_and_rules_changed_through_the_api_are_seen_by_the_next_batch(
    alerts_stack: StackFactory,
) -> None:
    receiver = HttpReceiver()
    async with serve(receiver.app()) as url, alerts_stack(channels=webhooks(url, "a")) as stack:
        await stack.send(risky(stack, "first"))
        await wait_for(lambda: _told(receiver, {("/a", "first")}), 30, "first to a")
        added = await stack.api.put(
            "/v1/channels/b", json={"kind": "webhook", "url": f"{url}/b"}, headers=ADMIN
        )
        await stack.send(risky(stack, "second"))
        both = {("/a", "first"), ("/a", "second"), ("/b", "second")}
        await wait_for(lambda: _told(receiver, both), 30, "second to a and b")
        no_rules = await stack.api.put("/v1/rules", json={"rules": []}, headers=ADMIN)
        await stack.send(risky(stack, "third"))
        await wait_for(lambda: stack.applied({"third": 1}), 30, "third applied")
        third = await stack.alerts(account_id="third")

    assert (added.status_code, no_rules.status_code) == (200, 200)
    assert third == []
    assert await _told(receiver, both)


@pytest.mark.kafka
@pytest.mark.postgres
async def test_two_route_changes_in_one_clock_instant_are_both_seen(
    alerts_stack: StackFactory,
) -> None:
    receiver = HttpReceiver()
    async with (
        serve(receiver.app()) as url,
        alerts_stack(channels=webhooks(url, "a", "b")) as stack,
    ):
        instant = stack.clock.now  # the fake clock stands still: both writes share it
        to_a = await stack.api.put("/v1/routes", json={"receivers": ["a"]}, headers=ADMIN)
        await stack.send(risky(stack, "one"))
        await wait_for(lambda: _told(receiver, {("/a", "one")}), 30, "one to a")
        to_b = await stack.api.put("/v1/routes", json={"receivers": ["b"]}, headers=ADMIN)
        await stack.send(risky(stack, "two"))
        await wait_for(lambda: _told(receiver, {("/a", "one"), ("/b", "two")}), 30, "two to b")
        in_force = (await stack.api.get("/v1/routes", headers=ADMIN)).json()

    assert stack.clock.now == instant
    assert (to_a.status_code, to_b.status_code) == (200, 200)
    assert in_force == {"source": "api", "route": {"receivers": ["b"]}}


@pytest.mark.kafka
@pytest.mark.postgres
async def test_batches_parse_nothing_again_until_a_change(
    alerts_stack: StackFactory, parses: list[Setup]
) -> None:
    receiver = HttpReceiver()
    async with serve(receiver.app()) as url, alerts_stack(channels=webhooks(url, "a")) as stack:
        await stack.send(risky(stack, "one"))
        await wait_for(lambda: _told(receiver, {("/a", "one")}), 30, "one to a")
        after_first = len(parses)  # the first reads of the consumer and the dispatcher
        told = {("/a", "one")}
        for account in ("two", "three", "four"):
            await stack.send(risky(stack, account))
            told.add(("/a", account))
            await wait_for(lambda: _told(receiver, told), 30, f"{account} to a")
        quiet = len(parses)
        await stack.api.put("/v1/rules", json={"rules": []}, headers=ADMIN)
        await stack.send(risky(stack, "five"))
        await wait_for(lambda: stack.applied({"five": 1}), 30, "five applied")
        changed = len(parses)

    assert 1 <= after_first == quiet
    assert changed > quiet and parses[-1].rules == []


async def _current(cache: SetupCache, sessions: SessionFactory) -> Setup:
    async with sessions() as session, session.begin():
        return await cache.current(session)


@pytest.mark.postgres
async def test_each_replica_parses_once_per_change_and_sees_anothers_change(
    sessions: SessionFactory, parses: list[Setup]
) -> None:
    files = load_files(AlertsSettings(environment="test"))
    mine, other = SetupCache(files), SetupCache(files)
    first = await _current(mine, sessions)
    again = await _current(mine, sessions)
    before_change = await _current(other, sessions)
    async with sessions() as session, session.begin():  # the other replica's API
        await repository.raise_config_revision(session)
        now = datetime.now(UTC)
        await repository.save_config_document(session, configuration.RULES_KEY, {"rules": []}, now)
    changed = await _current(mine, sessions)
    changed_again = await _current(mine, sessions)

    assert again is first and changed_again is changed
    assert (first.rules_source, before_change.rules_source) == ("file", "file")
    assert (changed.rules_source, changed.rules) == ("api", [])
    assert len(parses) == 3  # mine twice (before and after the change), the other once
