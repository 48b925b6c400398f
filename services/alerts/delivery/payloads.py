"""What is sent: the alert event, and the payload each receiver expects. Pure.

Every notice starts as an :class:`AlertEvent` (also the generic webhook body and the
``vitals.alerts`` record); for people it becomes a :class:`Message` (title, summary,
facts, reasons, link), rendered as Slack Block Kit, a Teams Adaptive Card or e-mail.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from typing import Annotated, Final, Literal
from urllib.parse import quote

import orjson
from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator

from services.alerts.documents import JsonObject
from services.alerts.rules.engine import Decision
from shared.events import INT64_MAX, Identifier
from shared.scores import MAX_LIST_ITEMS, MAX_SEQUENCE, AccountFacts, ComponentName, ScoreChange

ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"
DIGEST: Final = "alert.digest"
SLACK_HEADER_MAX = 150
SLACK_TEXT_MAX = 3000
PREFIX = {
    "opened": "",
    "escalated": "Escalated: ",
    "reminded": "Still open: ",
    "resolved": "Resolved: ",
}


MAX_SUMMARY_CHARS = 32_000
"""Room for a churn-risk summary quoting every risk reason a score change may hold."""
MAX_DETAILS_BYTES = 256 * 1024
"""Room for every risk reason a score change may hold, at four bytes a character."""
Short = Annotated[str, Field(max_length=100)]


class AlertEvent(BaseModel):
    """One alert transition, as stored in the outbox and sent to machines. Bounded in
    every field, so that it always fits a Kafka record and a receiver's request."""

    model_config = ConfigDict(frozen=True)

    type: Literal["alert.opened", "alert.escalated", "alert.reminded", "alert.resolved"]
    alert_id: Short
    rule: Short
    episode: int = Field(ge=0, le=INT64_MAX)
    notification: int = Field(ge=0, le=INT64_MAX)
    state: Literal["open", "resolved"]
    severity: Short
    account_id: Identifier
    account: AccountFacts
    tier: Short | None
    previous_tier: Short | None
    risk: Short | None
    health_score: int
    previous_score: int | None
    band: Short
    components: dict[ComponentName, int] = Field(max_length=MAX_LIST_ITEMS)
    summary: str = Field(max_length=MAX_SUMMARY_CHARS)
    details: JsonObject
    sequence: int = Field(ge=1, le=MAX_SEQUENCE)
    computed_at: datetime
    occurred_at: datetime
    link: str | None = Field(None, max_length=8192)
    """The operator's template with an id percent-encoded (up to three times its length)."""

    @field_validator("details")
    @classmethod
    def _details_bounded(cls, details: JsonObject) -> JsonObject:
        size = len(orjson.dumps(details, default=str))
        if size > MAX_DETAILS_BYTES:
            raise ValueError(f"details take {size} bytes as JSON, over {MAX_DETAILS_BYTES}")
        return details


class Digest(BaseModel):
    """One day's open alerts of one owner, as stored in the outbox and sent to machines."""

    model_config = ConfigDict(frozen=True)

    type: Literal["alert.digest"] = DIGEST
    owner: str
    day: str
    alerts: list[AlertEvent]


def alert_event(
    decision: Decision, change: ScoreChange, now: datetime, link_template: str | None
) -> AlertEvent:
    alert = decision.alert
    return AlertEvent(
        type=f"alert.{decision.transition.value}",
        alert_id=alert.id,
        rule=alert.rule,
        episode=alert.episode,
        notification=alert.notifications,
        state=alert.state.value,
        severity=alert.severity,
        account_id=change.account_id,
        account=change.account,
        tier=change.tier.value if change.tier else None,
        previous_tier=change.previous_tier.value if change.previous_tier else None,
        risk=change.risk.value if change.risk else None,
        health_score=change.health_score,
        previous_score=change.previous_score,
        band=change.band.value,
        components=dict(change.components),
        summary=decision.summary,
        details=decision.details,
        sequence=change.sequence,
        computed_at=change.computed_at,
        occurred_at=now,
        link=account_link(link_template, change.account_id),
    )


def sample_event(now: datetime) -> JsonObject:
    """A made-up notice for ``POST /v1/channels/{id}/test``."""
    event = AlertEvent(
        type="alert.opened",
        alert_id="00000000-0000-0000-0000-000000000000",
        rule="channel_test",
        episode=1,
        notification=1,
        state="open",
        severity="test",
        account_id="example-account",
        account=AccountFacts(name="Example account (test notice)"),
        tier=None,
        previous_tier=None,
        risk=None,
        health_score=50,
        previous_score=None,
        band="yellow",
        components={},
        summary="A test notice from Vitals: this channel works.",
        details={},
        sequence=1,
        computed_at=now,
        occurred_at=now,
    )
    return event.model_dump(mode="json")


def account_link(template: str | None, account_id: str) -> str | None:
    if not template:
        return None
    return template.replace("{account_id}", quote(account_id, safe=""))


@dataclass(frozen=True)
class Message:
    """A notice for people, whatever the channel."""

    title: str
    summary: str
    facts: list[tuple[str, str]]
    reasons: list[str]
    link: str | None
    footer: str

    @property
    def text(self) -> str:
        """Plain text: the fallback of rich messages and the e-mail body."""
        lines = [self.title, "", self.summary]
        lines += ["", *(f"{name}: {value}" for name, value in self.facts)]
        if self.reasons:
            lines += ["", "Why:", *(f"- {reason}" for reason in self.reasons)]
        if self.link:
            lines += ["", self.link]
        return "\n".join([*lines, "", self.footer])


def notice_message(event: AlertEvent) -> Message:
    account = event.account.name or event.account_id
    change = ""
    if event.previous_score is not None:
        change = f" ({event.health_score - event.previous_score:+d})"
    facts = [
        ("Account", account),
        ("Tier", _tier(event)),
        ("Health", f"{event.health_score}{change}, {event.band}"),
    ]
    if event.risk:
        facts.append(("Churn risk", event.risk))
    if owner := event.account.owner_csm_slack or event.account.owner_csm_email:
        facts.append(("Owner", owner))
    if event.account.mrr_minor is not None:
        facts.append(("MRR", _money(event.account.mrr_minor, event.account.currency)))
    reasons = [str(driver["text"]) for driver in _objects(event.details.get("drivers"))]
    reasons += [r for r in _texts(event.details.get("risk_reasons")) if r not in reasons]
    title = f"{PREFIX[event.type.removeprefix('alert.')]}{_rule_title(event.rule)}: {account}"
    footer = f"Vitals alert {event.alert_id} ({event.rule}, episode {event.episode})"
    return Message(title, event.summary, facts, reasons, event.link, footer)


def _objects(value: JsonValue) -> list[JsonObject]:
    """The objects of a list in an event's details (absent: none)."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _texts(value: JsonValue) -> list[str]:
    """The texts of a list in an event's details (absent: none)."""
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def digest_message(owner: str, events: list[AlertEvent], day: str) -> Message:
    """One daily message with the open alerts of one CSM's accounts."""
    facts = [
        (f"{e.account.name or e.account_id} ({_tier(e)})", f"{_rule_title(e.rule)}: {e.summary}")
        for e in sorted(events, key=lambda e: (_tier_rank(e.tier), e.account_id, e.rule))
    ]
    count = len(events)
    title = f"Vitals digest for {owner}, {day}: {count} open alert{'s' if count != 1 else ''}"
    return Message(title, "Open alerts on your accounts:", facts, [], None, "Vitals daily digest")


def _tier(event: AlertEvent) -> str:
    if event.previous_tier and event.previous_tier != event.tier:
        return f"{event.previous_tier} -> {event.tier}"
    return event.tier or "-"


def _tier_rank(tier: str | None) -> int:
    return "SABC".find(tier) if tier else 9


def _rule_title(rule: str) -> str:
    return rule.replace("_", " ").capitalize()


def _money(minor: int, currency: str | None) -> str:
    return f"{minor / 100:,.2f} {currency or ''}".strip()


# --- Slack ----------------------------------------------------------------------------


def slack_payload(message: Message) -> JsonObject:
    """A Block Kit message for an incoming webhook, with ``text`` as the fallback."""
    blocks: list[JsonValue] = [
        {"type": "header", "text": _plain(_cut(message.title, SLACK_HEADER_MAX))},
        {"type": "section", "text": _mrkdwn(_cut(_escape(message.summary), SLACK_TEXT_MAX))},
    ]
    fields: list[JsonValue] = [
        _mrkdwn(f"*{_escape(name)}*\n{_escape(value)}") for name, value in message.facts
    ]
    for start in range(0, len(fields), 10):  # Slack allows 10 fields per section
        blocks.append({"type": "section", "fields": fields[start : start + 10]})
    if message.reasons:
        reasons = "\n".join(f"• {_escape(r)}" for r in message.reasons)
        blocks.append(
            {"type": "section", "text": _mrkdwn(_cut(f"*Why*\n{reasons}", SLACK_TEXT_MAX))}
        )
    if message.link:
        button: JsonObject = {"type": "button", "text": _plain("Open account"), "url": message.link}
        blocks.append({"type": "actions", "elements": [button]})
    blocks.append({"type": "context", "elements": [_mrkdwn(_escape(message.footer))]})
    return {"text": _cut(message.text, SLACK_TEXT_MAX), "blocks": blocks}


def _plain(text: str) -> JsonObject:
    return {"type": "plain_text", "text": text, "emoji": True}


def _mrkdwn(text: str) -> JsonObject:
    return {"type": "mrkdwn", "text": text}


def _escape(text: str) -> str:
    """Slack's mrkdwn control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- Microsoft Teams --------------------------------------------------------------------


def teams_payload(message: Message) -> JsonObject:
    """An Adaptive Card 1.4 attachment, as a Teams Workflows webhook expects it."""
    body: list[JsonValue] = [
        {
            "type": "TextBlock",
            "text": message.title,
            "size": "Large",
            "weight": "Bolder",
            "wrap": True,
        },
        {"type": "TextBlock", "text": message.summary, "wrap": True},
        {"type": "FactSet", "facts": [{"title": n, "value": v} for n, v in message.facts]},
    ]
    if message.reasons:
        body.append({"type": "TextBlock", "text": "Why", "weight": "Bolder", "wrap": True})
        body += [{"type": "TextBlock", "text": f"- {r}", "wrap": True} for r in message.reasons]
    body.append(
        {
            "type": "TextBlock",
            "text": message.footer,
            "isSubtle": True,
            "size": "Small",
            "wrap": True,
        }
    )
    card: JsonObject = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    }
    if message.link:
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Open account", "url": message.link}]
    attachment: JsonObject = {"contentType": ADAPTIVE_CARD, "contentUrl": None, "content": card}
    return {"type": "message", "attachments": [attachment]}


# --- e-mail -------------------------------------------------------------------------------


def email_message(
    message: Message, sender: str, recipients: list[str], message_id: str
) -> EmailMessage:
    """Plain text with an HTML alternative; ``message_id`` makes resends recognisable."""
    mail = EmailMessage()
    mail["Subject"] = f"[Vitals] {message.title}"
    mail["From"] = sender
    mail["To"] = ", ".join(recipients)
    mail["Message-ID"] = f"<{message_id}@vitals>"
    mail.set_content(message.text)
    mail.add_alternative(email_html(message), subtype="html")
    return mail


def email_html(message: Message) -> str:
    esc = html.escape
    rows = "".join(
        f'<tr><th align="left">{esc(n)}</th><td>{esc(v)}</td></tr>' for n, v in message.facts
    )
    parts = [
        f"<h2>{esc(message.title)}</h2>",
        f"<p>{esc(message.summary)}</p>",
        f"<table>{rows}</table>",
    ]
    if message.reasons:
        items = "".join(f"<li>{esc(r)}</li>" for r in message.reasons)
        parts.append(f"<p><strong>Why</strong></p><ul>{items}</ul>")
    if message.link:
        parts.append(f'<p><a href="{esc(message.link, quote=True)}">Open account</a></p>')
    parts.append(f"<p><small>{esc(message.footer)}</small></p>")
    return "<html><body>" + "".join(parts) + "</body></html>"
