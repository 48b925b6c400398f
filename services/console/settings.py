"""The console's settings: where the scoring, alerts and ingest APIs are, and its sessions."""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import (
    AnyHttpUrl,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from shared.settings import VitalsSettings


class ConsoleSettings(VitalsSettings):
    console_scoring_url: AnyHttpUrl = Field(
        AnyHttpUrl("http://127.0.0.1:8002"), description="Base URL of the scoring API."
    )
    console_alerts_url: AnyHttpUrl = Field(
        AnyHttpUrl("http://127.0.0.1:8003"), description="Base URL of the alerts API."
    )
    console_ingest_url: AnyHttpUrl | None = Field(
        None,
        description="Base URL of the ingest API, for the page of Stripe customers with no "
        "account. Unset: that page says so; every other page works without it.",
    )
    console_session_key: SecretStr | None = Field(
        None,
        description="Fernet key that seals session cookies (Fernet.generate_key() of the "
        "cryptography package); required in production. Unset elsewhere: a key made at "
        "start, so sessions end when the console restarts.",
    )
    console_session_hours: float = Field(
        12, gt=0, le=24 * 30, description="How long a sign-in lasts."
    )
    console_api_timeout_s: float = Field(
        10, gt=0, le=120, description="How long a page waits for the scoring or alerts API."
    )

    console_backtest_report: Path | None = Field(
        None,
        description="The JSON report of `vitals backtest --report FILE` to show on the "
        "Backtest page (make run points it at make backtest's).",
    )
    console_backtest_chart: Path | None = Field(
        None, description="Its chart, `vitals backtest --chart FILE.png`, shown beside it."
    )

    console_oidc_issuer: AnyHttpUrl | None = Field(
        None,
        description="Issuer URL of an OpenID Connect provider; set, people may sign in "
        "through it as well as with an API key.",
    )
    console_oidc_client_id: str | None = Field(None, description="The console's client id there.")
    console_oidc_client_secret: SecretStr | None = Field(None, description="Its client secret.")
    console_oidc_act_group: str | None = Field(
        None,
        description="People whose `groups` claim holds this group may acknowledge, snooze "
        "and override; the others read only. Unset: everyone signed in through the "
        "provider reads only.",
    )
    console_api_key: SecretStr | None = Field(
        None,
        description="The console's own API key, used for people signed in through the "
        "provider: the read scope, and act when an act group is set. Required with "
        "VITALS_CONSOLE_OIDC_ISSUER.",
    )

    @model_validator(mode="after")
    def _provider_complete(self) -> Self:
        if self.console_oidc_issuer is not None:
            missing = [
                f"VITALS_{name.upper()}"
                for name in ("console_oidc_client_id", "console_api_key")
                if getattr(self, name) is None
            ]
            if missing:
                raise ValueError(f"sign-in through a provider also needs {', '.join(missing)}")
        return self

    @field_validator("console_session_key")
    @classmethod
    def _session_key_in_production(
        cls, key: SecretStr | None, info: ValidationInfo
    ) -> SecretStr | None:
        if key is None and info.data.get("environment") == "production":
            raise ValueError("required in production: the Fernet key that seals sessions")
        return key

    def secure_cookies(self) -> bool:
        """Cookies only over HTTPS in production (behind its TLS proxy)."""
        return self.environment == "production"
