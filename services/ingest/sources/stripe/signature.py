"""``Stripe-Signature`` verification, with several endpoint secrets for rotation.

Stripe's own library does the checking (``t=`` and one or more ``v1=``; HMAC-SHA256
of ``"{t}.{raw body}"``; constant-time compare; timestamps older than the tolerance
refused); this module only tries each configured secret in turn.
"""

from __future__ import annotations

from collections.abc import Sequence

from stripe import SignatureVerificationError, WebhookSignature


class InvalidSignature(Exception):
    """The body was not signed by Stripe with any configured secret, or too long ago."""


def verify_stripe_signature(
    body: bytes, header: str | None, secrets: Sequence[str], tolerance_s: float
) -> None:
    """Return if one of ``secrets`` signed ``body`` within ``tolerance_s``; else raise."""
    if not header:
        raise InvalidSignature("the Stripe-Signature header is missing")
    try:
        payload = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidSignature("the body is not UTF-8, so Stripe did not sign it") from None
    problems: list[str] = []
    for secret in secrets:
        try:
            WebhookSignature.verify_header(payload, header, secret, tolerance_s)
        except SignatureVerificationError as exc:
            problems.append(str(exc.user_message or exc))
        else:
            return
    # A matching signature that is too old says more than the mismatches of other secrets.
    stale = [p for p in problems if "tolerance" in p]
    raise InvalidSignature((stale or problems or ["no Stripe webhook secret configured"])[0])
