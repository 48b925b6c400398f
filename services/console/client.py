"""The scoring, alerts and ingest APIs as the console reads them, with the person's own key.

Every answer is read into the API's own response model (``services/scoring/schemas.py``,
``services/alerts/schemas.py``), so pages read attributes the APIs publish. Every
failure becomes one of a few errors the pages know how to show: the key was refused
(sign in again), not allowed (the key's scopes), not found, bad input (the API's own
words), the service unavailable, or an answer that is not the API's model (the console
and the service disagree: logged here, where it is found). Nothing is retried: a person
is waiting, and reloading the page is the retry.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TypeVar
from urllib.parse import quote

import httpx
from pydantic import TypeAdapter, ValidationError

from services.alerts.schemas import AlertList, AlertRead
from services.alerts.tasks.schemas import TaskDetail, TaskList
from services.console import problems
from services.ingest.sources.stripe.schemas import UnmappedCustomerList
from services.scoring.schemas import (
    AccountPage,
    AccountRead,
    AttentionList,
    HistoryPage,
    OverrideRead,
    OverridesLifted,
    PortfolioRead,
    ScorecardRead,
)

T = TypeVar("T")
Params = dict[str, str | list[str]]
Body = dict[str, str]
"""A JSON request body: every field the console sends is a string."""

log = logging.getLogger(__name__)

ACCOUNT_PAGE = TypeAdapter(AccountPage)
ACCOUNT = TypeAdapter(AccountRead)
ATTENTION = TypeAdapter(AttentionList)
HISTORY_PAGE = TypeAdapter(HistoryPage)
OVERRIDES = TypeAdapter(list[OverrideRead])
OVERRIDE = TypeAdapter(OverrideRead)
LIFTED = TypeAdapter(OverridesLifted)
PORTFOLIO = TypeAdapter(PortfolioRead)
SCORECARDS = TypeAdapter(list[ScorecardRead])
ALERTS = TypeAdapter(AlertList)
ALERT = TypeAdapter(AlertRead)
TASKS = TypeAdapter(TaskList)
TASK = TypeAdapter(TaskDetail)
UNMAPPED_CUSTOMERS = TypeAdapter(UnmappedCustomerList)
MOST_PROBLEMS = 5  # of an answer that does not validate, in its log line


class ConsoleError(Exception):
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SignedOut(ConsoleError):
    status = 401

    def __init__(self, message: str, code: str = "key_refused") -> None:
        super().__init__(message)
        self.code = code  # what the sign-in page then says: a code of SIGN_IN_MESSAGES


class NotAllowed(ConsoleError):
    status = 403


class NotFound(ConsoleError):
    status = 404


class BadInput(ConsoleError):
    status = 400


class Unavailable(ConsoleError):
    status = 503


class BadAnswer(ConsoleError):
    """A service answered with something that is not its API's model (not JSON, a field
    missing or of another type): the console and the service disagree, most likely by
    version. A fault to fix, not to retry; its page stays a 500, as any console fault."""

    status = 500

    def __init__(self, service: str) -> None:
        super().__init__(
            f"The {service} service answered in a shape this console cannot read: the two "
            "may be at different versions. It is logged."
        )


class Api:
    """One service's API; ``key`` is the signed-in person's."""

    def __init__(self, name: str, client: httpx.AsyncClient) -> None:
        self.name = name
        self._client = client

    async def alive(self) -> str:
        """ "ok", or why the service is not answering (for the console's readiness)."""
        try:
            response = await self._client.get("/healthz")
        except httpx.HTTPError as exc:
            return f"no answer ({type(exc).__name__})"
        return "ok" if response.status_code == 200 else f"answered {response.status_code}"

    async def _call(
        self,
        key: str,
        method: str,
        path: str,
        answer: TypeAdapter[T],
        *,
        params: Params | None = None,
        body: Body | None = None,
    ) -> T:
        """The answer to ``method path``, read as ``answer``; raises a ``ConsoleError``."""
        headers = {"Authorization": f"Bearer {key}"}
        try:
            response = await self._client.request(
                method, path, headers=headers, params=params, json=body
            )
        except httpx.HTTPError as exc:
            problem = f"the {self.name} service did not answer ({type(exc).__name__})"
            raise Unavailable(problem) from None
        if response.status_code >= 300:
            raise _error(self.name, response)
        try:
            return answer.validate_json(response.content)
        except ValidationError as exc:
            log.error(
                "the %s service's answer to %s %s is not its %s: %s",
                self.name,
                method,
                path,
                exc.title,
                _problems(exc),
            )
            raise BadAnswer(self.name) from None


class ScoringApi(Api):
    """The scoring API: accounts, their history and overrides, portfolio, scorecards."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        super().__init__("scoring", client)

    async def accounts(self, key: str, params: Params) -> AccountPage:
        return await self._call(key, "GET", "/v1/accounts", ACCOUNT_PAGE, params=params)

    async def account(self, key: str, account_id: str) -> AccountRead:
        return await self._call(key, "GET", _account(account_id), ACCOUNT)

    async def history(self, key: str, account_id: str, params: Params) -> HistoryPage:
        path = f"{_account(account_id)}/history"
        return await self._call(key, "GET", path, HISTORY_PAGE, params=params)

    async def overrides(self, key: str, account_id: str) -> list[OverrideRead]:
        return await self._call(key, "GET", f"{_account(account_id)}/overrides", OVERRIDES)

    async def attention(self, key: str, params: Params) -> AttentionList:
        return await self._call(key, "GET", "/v1/attention", ATTENTION, params=params)

    async def portfolio(self, key: str, scope: Params) -> PortfolioRead:
        return await self._call(key, "GET", "/v1/portfolio", PORTFOLIO, params=scope)

    async def scorecards(self, key: str) -> list[ScorecardRead]:
        return await self._call(key, "GET", "/v1/scorecards", SCORECARDS)

    async def set_override(
        self,
        key: str,
        account_id: str,
        *,
        field: str,
        value: str,
        reason: str,
        expires_at: datetime,
        created_by: str,
    ) -> OverrideRead:
        """As given: the API checks it, and its refusal is shown in its own words."""
        body = {
            "field": field,
            "value": value,
            "reason": reason,
            "expires_at": expires_at.isoformat(),
            "created_by": created_by,
        }
        path = f"{_account(account_id)}/overrides"
        return await self._call(key, "POST", path, OVERRIDE, body=body)

    async def lift_overrides(
        self, key: str, account_id: str, *, by: str, field: str
    ) -> OverridesLifted:
        path = f"{_account(account_id)}/overrides"
        params: Params = {"by": by, "field": field}
        return await self._call(key, "DELETE", path, LIFTED, params=params)


class AlertsApi(Api):
    """The alerts API: alerts, and a CSM's acknowledgement and snooze of one."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        super().__init__("alerts", client)

    async def alerts(self, key: str, params: Params) -> AlertList:
        return await self._call(key, "GET", "/v1/alerts", ALERTS, params=params)

    async def ack(self, key: str, alert_id: str, *, by: str) -> AlertRead:
        path = f"{_alert(alert_id)}/ack"
        return await self._call(key, "POST", path, ALERT, body={"by": by})

    async def snooze(self, key: str, alert_id: str, *, duration: str) -> AlertRead:
        """Snoozed for ``duration``, as the API writes one (``4h``, ``1d``)."""
        path = f"{_alert(alert_id)}/snooze"
        return await self._call(key, "POST", path, ALERT, body={"for": duration})

    async def tasks(self, key: str, params: Params) -> TaskList:
        return await self._call(key, "GET", "/v1/tasks", TASKS, params=params)

    async def task(self, key: str, task_id: str) -> TaskDetail:
        """One task with its history (who did what, when)."""
        return await self._call(key, "GET", _task(task_id), TASK)

    async def act_on_task(self, key: str, task_id: str, body: Body) -> TaskDetail:
        """``PATCH`` the task: ``action`` complete, skip, reassign or snooze, with the
        fields the API asks of each and ``by``, who acts."""
        return await self._call(key, "PATCH", _task(task_id), TASK, body=body)


class IngestApi(Api):
    """The ingest API: what it keeps aside (Stripe customers with no account)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        super().__init__("ingest", client)

    async def unmapped_customers(self, key: str) -> UnmappedCustomerList:
        path = "/v1/stripe/unmapped-customers"
        return await self._call(key, "GET", path, UNMAPPED_CUSTOMERS)


def _account(account_id: str) -> str:
    return f"/v1/accounts/{quote(account_id, safe='')}"


def _alert(alert_id: str) -> str:
    return f"/v1/alerts/{quote(alert_id, safe='')}"


def _task(task_id: str) -> str:
    return f"/v1/tasks/{quote(task_id, safe='')}"


def _problems(exc: ValidationError) -> str:
    """Where the answer differs from the model and how, without its values (an answer
    may hold what a log should not)."""
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    said = [
        f"{'.'.join(str(part) for part in error['loc']) or '(the whole answer)'}: {error['msg']}"
        for error in errors[:MOST_PROBLEMS]
    ]
    more = len(errors) - MOST_PROBLEMS
    return "; ".join(said) + (f"; and {more} more" if more > 0 else "")


def _error(service: str, response: httpx.Response) -> ConsoleError:
    detail = _detail(response)
    status = response.status_code
    if status == 401:
        return SignedOut(detail or "the key was refused")
    if status == 403:
        return NotAllowed(detail or "the key does not allow this")
    if status == 404:
        return NotFound(detail or "not found")
    if status in (400, 409, 422):
        return BadInput(detail or "the request was refused")
    return Unavailable(f"the {service} service answered {status}")


def _detail(response: httpx.Response) -> str | None:
    """A Problem's ``message`` (every Vitals API error is one), its fields' problems in
    words when it names them, or None."""
    try:
        body: object = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    details = body.get("details")
    if isinstance(details, list):
        fields = [d for d in details if isinstance(d, dict) and "loc" in d]
        if (words := problems.sentence(fields)) is not None:
            return words
    message = body.get("message")
    return message if isinstance(message, str) else None
