from datetime import timedelta
from typing import Any

from services.alerts.delivery.payloads import (
    AlertEvent,
    alert_event,
    digest_message,
    email_message,
    notice_message,
    slack_payload,
    teams_payload,
)
from services.alerts.documents import JsonObject
from shared.scores import Risk, Tier
from tests.support.alerts_messages import driver, enriched_change, opened
from tests.support.events import T0

LINK = "https://app.example.com/accounts/{account_id}"


def event(**fields: object) -> AlertEvent:
    change = enriched_change(
        account_id="acme/eu",
        health_score=38,
        previous_score=71,
        risk=Risk.high,
        tier=Tier.S,
        previous_tier=Tier.S,
        drivers=[driver("engagement", -21, "active users / seats 0.62 -> 0.31, -21 points")],
    )
    details: JsonObject = {
        "drivers": [{"text": "active users / seats 0.62 -> 0.31, -21 points"}],
        "risk_reasons": ["usage <down> 50% & more"],
    }
    decision = opened("Churn risk low -> high", details, account_id="acme/eu", episode=2)
    built = alert_event(decision, change, T0 + timedelta(minutes=1), LINK)
    return built.model_copy(update=fields)


def test_the_event_carries_the_account_the_change_and_the_reason() -> None:
    built = event()

    assert built.type == "alert.opened"
    assert built.link == "https://app.example.com/accounts/acme%2Feu"
    assert (built.health_score, built.previous_score, built.tier) == (38, 71, "S")
    assert built.account.owner_csm_email == "dana@vendor.example"


def test_slack_gets_block_kit_with_a_text_fallback() -> None:
    payload = slack_payload(notice_message(event()))

    assert payload == {
        "text": (
            "Churn risk raised: Acme Corp\n\nChurn risk low -> high\n\n"
            "Account: Acme Corp\nTier: S\nHealth: 38 (-33), red\nChurn risk: high\n"
            "Owner: @dana\nMRR: 2,500.00 EUR\n\nWhy:\n"
            "- active users / seats 0.62 -> 0.31, -21 points\n- usage <down> 50% & more\n\n"
            "https://app.example.com/accounts/acme%2Feu\n\n"
            "Vitals alert a-1 (churn_risk_raised, episode 2)"
        ),
        "blocks": [
            {
                "type": "header",
                "text": {
                    "type": "plain_text",
                    "text": "Churn risk raised: Acme Corp",
                    "emoji": True,
                },
            },
            {"type": "section", "text": {"type": "mrkdwn", "text": "Churn risk low -&gt; high"}},
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": "*Account*\nAcme Corp"},
                    {"type": "mrkdwn", "text": "*Tier*\nS"},
                    {"type": "mrkdwn", "text": "*Health*\n38 (-33), red"},
                    {"type": "mrkdwn", "text": "*Churn risk*\nhigh"},
                    {"type": "mrkdwn", "text": "*Owner*\n@dana"},
                    {"type": "mrkdwn", "text": "*MRR*\n2,500.00 EUR"},
                ],
            },
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": (
                        "*Why*\n• active users / seats 0.62 -&gt; 0.31, -21 points\n"
                        "• usage &lt;down&gt; 50% &amp; more"
                    ),
                },
            },
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Open account", "emoji": True},
                        "url": "https://app.example.com/accounts/acme%2Feu",
                    }
                ],
            },
            {
                "type": "context",
                "elements": [
                    {"type": "mrkdwn", "text": "Vitals alert a-1 (churn_risk_raised, episode 2)"}
                ],
            },
        ],
    }


def test_teams_gets_an_adaptive_card_1_4_attachment() -> None:
    # Read as a receiver reads JSON: any shape, checked by the assertions.
    payload: dict[str, Any] = teams_payload(notice_message(event(type="alert.resolved", link=None)))

    (attachment,) = payload["attachments"]
    card = attachment["content"]
    assert payload["type"] == "message"
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert (card["type"], card["version"]) == ("AdaptiveCard", "1.4")
    assert card["body"][0]["text"] == "Resolved: Churn risk raised: Acme Corp"
    assert card["body"][2]["facts"][2] == {"title": "Health", "value": "38 (-33), red"}
    assert "actions" not in card


def test_email_has_plain_text_and_escaped_html() -> None:
    mail = email_message(notice_message(event()), "vitals@x.example", ["dana@x.example"], "n-1")

    plain, rich = (part.get_content() for part in mail.iter_parts())
    assert mail["Subject"] == "[Vitals] Churn risk raised: Acme Corp"
    assert mail["Message-ID"] == "<n-1@vitals>"
    assert "- usage <down> 50% & more" in plain
    assert "<li>usage &lt;down&gt; 50% &amp; more</li>" in rich


def test_a_digest_lists_open_alerts_by_tier() -> None:
    alerts = [
        event(tier="B", previous_tier="B", account_id="b"),
        event(tier="S", rule="account_silent"),
    ]

    message = digest_message("dana@vendor.example", alerts, "2026-11-22")

    assert message.title == "Vitals digest for dana@vendor.example, 2026-11-22: 2 open alerts"
    assert [name for name, _ in message.facts] == ["Acme Corp (S)", "Acme Corp (B)"]
    assert message.facts[0][1] == "Account silent: Churn risk low -> high"
