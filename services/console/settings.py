"""The console's settings: where the scoring and alerts APIs are, and its sessions."""

from __future__ import annotations

from pathlib import Path

from pydantic import AnyHttpUrl, Field, SecretStr, ValidationInfo, field_validator

from shared.settings import VitalsSettings


class ConsoleSettings(VitalsSettings):
    console_scoring_url: AnyHttpUrl = Field(
        AnyHttpUrl("http://127.0.0.1:8002"), description="Base URL of the scoring API."
    )
    console_alerts_url: AnyHttpUrl = Field(
        AnyHttpUrl("http://127.0.0.1:8003"), description="Base URL of the alerts API."
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
