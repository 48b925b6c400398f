"""The scoring and alerts APIs as the console reads them, with the person's own key.

Every failure becomes one of a few errors the pages know how to show: the key was
refused (sign in again), not allowed (the key's scopes), not found, bad input (the
API's own words), or the service unavailable. Nothing is retried: a person is
waiting, and reloading the page is the retry.
"""

from __future__ import annotations

from typing import Any

import httpx

Params = dict[str, str | list[str]]


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

    async def get(self, key: str, path: str, params: Params | None = None) -> Any:
        return await self._call(key, "GET", path, params=params)

    async def post(self, key: str, path: str, body: dict[str, Any]) -> Any:
        return await self._call(key, "POST", path, json=body)

    async def delete(self, key: str, path: str, params: Params) -> Any:
        return await self._call(key, "DELETE", path, params=params)

    async def _call(self, key: str, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {key}"}
        try:
            response = await self._client.request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            problem = f"the {self.name} service did not answer ({type(exc).__name__})"
            raise Unavailable(problem) from None
        if response.status_code < 300:
            return response.json()
        raise _error(self.name, response)


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
    """A Problem's ``message`` (every Vitals API error is one), or None."""
    try:
        body = response.json()
    except ValueError:
        return None
    message = body.get("message") if isinstance(body, dict) else None
    return message if isinstance(message, str) else None
