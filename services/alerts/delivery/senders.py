"""Sending one notice to one channel: the I/O shell around the pure payload builders.

Every failure is a :class:`SendFailed` saying whether to retry (and when the receiver
asked to be called again), whether the channel is gone for good (HTTP 410) or whether
the target is refused (SSRF guard), which no retry can fix.

What a failure says is shown by the API (a channel test, a delivery's last error), so
it must not tell what listens where: every failure to reach a receiver - refused,
reset, timed out, TLS or protocol mismatch, an address the guard refuses - reads
:data:`UNREACHABLE`; the detail goes to the server log only. Answers of a receiver
that speaks the channel's protocol (HTTP status, SMTP reply code) are told.
"""

from __future__ import annotations

import functools
import logging
import ssl
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import parsedate_to_datetime

import aiosmtplib
import httpx
import orjson
from standardwebhooks import Webhook

from services.alerts.delivery.certificates import CertificateRefused, read_certificates
from services.alerts.delivery.channels import (
    Channel,
    ChannelBase,
    EmailChannel,
    SlackChannel,
    TeamsChannel,
    WebhookChannel,
)
from services.alerts.delivery.payloads import (
    DIGEST,
    AlertEvent,
    Digest,
    Message,
    digest_message,
    email_message,
    notice_message,
    slack_payload,
    teams_payload,
)
from services.alerts.delivery.ssrf import (
    TargetPolicy,
    TargetRefused,
    connect_checked,
    guarded_client,
)
from services.alerts.documents import JsonObject

log = logging.getLogger(__name__)
# httpx logs every request's full URL at INFO, and a Slack or Teams URL is the secret.
logging.getLogger("httpx").setLevel(logging.WARNING)

USER_AGENT = "Vitals-Alerts/0.2"
RETRY_AFTER_MAX_S = 24 * 3600.0
UNREACHABLE = "the receiver could not be reached (the service log has the detail)"
# SMTP replies only a server that took the greeting and EHLO can give.
SMTP_ANSWERS = (
    aiosmtplib.SMTPAuthenticationError,
    aiosmtplib.SMTPSenderRefused,
    aiosmtplib.SMTPRecipientRefused,
    aiosmtplib.SMTPDataError,
)


class SendFailed(Exception):
    def __init__(
        self,
        reason: str,
        *,
        retry_after_s: float | None = None,
        gone: bool = False,
        permanent: bool = False,
        unreachable: bool = False,
    ) -> None:
        super().__init__(reason)
        self.retry_after_s = retry_after_s
        self.gone = gone
        self.permanent = permanent or gone
        self.unreachable = unreachable  # no receiver answered: the whole channel is down


def unreachable(channel: Channel, detail: Exception, *, permanent: bool = False) -> SendFailed:
    """The one outcome of every connection-level failure; the detail is logged only."""
    log.warning("channel %s: receiver not reached: %s", channel.id, _error_text(detail))
    return SendFailed(UNREACHABLE, permanent=permanent, unreachable=True)


def message_of(payload: JsonObject) -> Message:
    """The notice or digest stored in an outbox row, for people."""
    if payload.get("type") == DIGEST:
        digest = Digest.model_validate(payload)
        return digest_message(digest.owner, digest.alerts, digest.day)
    return notice_message(AlertEvent.model_validate(payload))


class Senders:
    def __init__(self, policy: TargetPolicy, timeout_s: float) -> None:
        self._policy = policy
        self._timeout_s = timeout_s
        self._http = guarded_client(policy, timeout_s, USER_AGENT)

    async def close(self) -> None:
        await self._http.aclose()

    async def send(
        self, channel: Channel, notice_id: str, payload: JsonObject, recipients: list[str]
    ) -> None:
        """Send, or raise :class:`SendFailed`."""
        try:
            await self._send(channel, notice_id, payload, recipients)
        except TargetRefused as exc:
            raise unreachable(channel, exc, permanent=True) from exc

    # How each kind of channel is sent to, found by the channel's class.
    @functools.singledispatchmethod
    async def _send(
        self, channel: ChannelBase, notice_id: str, payload: JsonObject, to: list[str]
    ) -> None:
        raise NotImplementedError(f"no sender for {type(channel).__name__}")

    @_send.register
    async def _slack(
        self, channel: SlackChannel, notice_id: str, payload: JsonObject, to: list[str]
    ) -> None:
        body = _json(slack_payload(message_of(payload)))
        await self._post(channel, channel.webhook_url.get_secret_value(), body, {})

    @_send.register
    async def _teams(
        self, channel: TeamsChannel, notice_id: str, payload: JsonObject, to: list[str]
    ) -> None:
        body = _json(teams_payload(message_of(payload)))
        await self._post(channel, channel.webhook_url.get_secret_value(), body, {})

    @_send.register
    async def _webhook(
        self, channel: WebhookChannel, notice_id: str, payload: JsonObject, to: list[str]
    ) -> None:
        body = _json(payload)
        # Receivers check the timestamp against their own clock: it is always real time.
        now = datetime.now(UTC)
        headers = {"webhook-id": notice_id, "webhook-timestamp": str(int(now.timestamp()))}
        if channel.secret is not None:
            signer = Webhook(channel.secret.get_secret_value())
            headers["webhook-signature"] = signer.sign(notice_id, now, body.decode())
        await self._post(channel, channel.url.get_secret_value(), body, headers)

    async def _post(self, channel: Channel, url: str, body: bytes, headers: dict[str, str]) -> None:
        # The client's transport checks the URL against the policy (ssrf.GuardedTransport).
        try:
            response = await self._http.post(
                url, content=body, headers={"content-type": "application/json", **headers}
            )
        except TargetRefused:
            raise
        except httpx.HTTPError as exc:
            raise unreachable(channel, exc) from exc
        if response.is_success:
            return
        status = response.status_code
        if status == 410:
            raise SendFailed("HTTP 410 from the receiver: the channel is gone", gone=True)
        if response.is_redirect:
            raise SendFailed(f"HTTP {status} from the receiver (redirects are not followed)")
        raise SendFailed(
            f"HTTP {status} from the receiver",
            retry_after_s=retry_after(response.headers.get("retry-after")),
        )

    @_send.register
    async def _email(
        self, channel: EmailChannel, notice_id: str, payload: JsonObject, to: list[str]
    ) -> None:
        if not to:
            raise SendFailed("no recipient: the account has no owner CSM e-mail", permanent=True)
        mail: EmailMessage = email_message(message_of(payload), channel.sender, to, notice_id)
        password = channel.password.get_secret_value() if channel.password else None
        try:
            tls = _tls_context(channel, self._policy)
        except CertificateRefused as exc:
            raise SendFailed(f"channel {channel.id}: {exc}", permanent=True) from exc
        try:
            # Connected here, to the address the guard checked: no second DNS lookup.
            sock = await connect_checked(self._policy, channel.host, channel.port, self._timeout_s)
        except OSError as exc:
            raise unreachable(channel, exc) from exc
        try:
            await aiosmtplib.send(
                mail,
                hostname=channel.host,
                sock=sock,
                username=channel.username,
                password=password,
                use_tls=channel.security == "tls",
                start_tls=channel.security == "starttls",
                tls_context=tls,
                timeout=self._timeout_s,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = sorted({refused.code for refused in exc.recipients})
            raise SendFailed(f"SMTP refused every recipient ({codes})", permanent=True) from exc
        except SMTP_ANSWERS as exc:
            raise SendFailed(f"SMTP {exc.code} from the receiver") from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise unreachable(channel, exc) from exc
        finally:
            sock.close()  # aiosmtplib closes it too; closing twice is harmless


def _tls_context(channel: EmailChannel, policy: TargetPolicy) -> ssl.SSLContext | None:
    if channel.security == "none":
        return None
    context = ssl.create_default_context()
    extra = channel.ca_pem
    if channel.ca_file is not None:
        # Checked again: the file may have changed since the channel was configured.
        extra = read_certificates(channel.ca_file, policy.certificates_dir)
    if extra is not None:
        context.load_verify_locations(cadata=extra)
    return context


def retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta seconds or an HTTP date), capped at a day."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return min(float(text), RETRY_AFTER_MAX_S)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    seconds = (when - datetime.now(UTC)).total_seconds()
    return min(max(seconds, 0.0), RETRY_AFTER_MAX_S)


def _json(payload: JsonObject) -> bytes:
    return orjson.dumps(payload)


def _error_text(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
