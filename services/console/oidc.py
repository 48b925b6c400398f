"""Sign-in through an OpenID Connect provider: the authorization code flow, by
Authlib's Starlette client (discovery, state and nonce, the ID token's signature).

Who signed in is named by the provider; whether they may act (acknowledge, snooze,
override) is whether their ``groups`` claim holds ``VITALS_CONSOLE_OIDC_ACT_GROUP``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, cast

from authlib.integrations.starlette_client import OAuth, OAuthError
from authlib.jose.errors import JoseError
from starlette.requests import Request
from starlette.responses import Response

from services.console.settings import ConsoleSettings

SCOPES = "openid email profile"
Refused = (OAuthError, JoseError)
"""What a refused or failed sign-in raises: denied, a state that does not match, a bad
token. A provider that does not answer raises ``httpx.HTTPError``."""


@dataclass(frozen=True)
class Identity:
    name: str
    may_act: bool


class Client(Protocol):
    """What the console calls of Authlib's Starlette client (Authlib has no types)."""

    async def authorize_redirect(self, request: Request, redirect_uri: str) -> Response: ...

    async def authorize_access_token(self, request: Request) -> Mapping[str, object]: ...

    async def userinfo(self, *, token: Mapping[str, object]) -> Mapping[str, object]: ...


def identity_of(claims: Mapping[str, object], act_group: str | None) -> Identity:
    """The person the provider's claims name, and whether their groups let them act."""
    name = next(
        (v.strip() for k in ("name", "email", "sub") if isinstance(v := claims.get(k), str)),
        "",
    )
    groups = claims.get("groups")
    may_act = act_group is not None and isinstance(groups, list) and act_group in groups
    return Identity(name=name[:200] or "(unnamed)", may_act=may_act)


class Provider:
    def __init__(self, settings: ConsoleSettings) -> None:
        assert settings.console_oidc_issuer is not None
        issuer = str(settings.console_oidc_issuer).rstrip("/")
        secret = settings.console_oidc_client_secret
        registered = OAuth().register(
            "provider",
            server_metadata_url=f"{issuer}/.well-known/openid-configuration",
            client_id=settings.console_oidc_client_id,
            client_secret=secret.get_secret_value() if secret else None,
            client_kwargs={"scope": SCOPES, "timeout": settings.console_api_timeout_s},
        )
        self._client = cast(Client, registered)
        self._act_group = settings.console_oidc_act_group

    async def start(self, request: Request, callback: str) -> Response:
        """A redirect to the provider's sign-in, coming back to ``callback``."""
        return await self._client.authorize_redirect(request, callback)

    async def finish(self, request: Request) -> Identity:
        """The person the provider sent back; raises one of ``Refused``."""
        token = await self._client.authorize_access_token(request)
        claims = token.get("userinfo")
        if not (isinstance(claims, Mapping) and claims):  # not in the ID token: asked for
            claims = await self._client.userinfo(token=token)
        return identity_of(claims, self._act_group)
