from __future__ import annotations

from datetime import date, time, timedelta
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AnyHttpUrl, Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import SettingsConfigDict

from services.alerts.delivery.sealing import check_keys
from services.alerts.playbooks.model import DEFAULT_PLAYBOOKS_FILE
from services.alerts.rules.ruleset import DEFAULT_RULES_FILE
from shared.settings import VitalsSettings

PLACEHOLDER_SECRETS = {"changethis", "changeme", "secret", "admin", "password", "token"}
MIN_ADMIN_TOKEN_LENGTH = 24


class AlertsSettings(VitalsSettings):
    # Errors name the setting and the problem, never the value: several are secrets.
    model_config = SettingsConfigDict(hide_input_in_errors=True)

    alerts_database_url: str = Field(
        "sqlite+aiosqlite:///var/alerts.db",
        description=(
            "SQLAlchemy URL of the alerts database; postgresql+asyncpg://... in production."
        ),
    )
    alerts_consumer_group: str = Field(
        "vitals-alerts", description="Kafka consumer group of the alerts replicas."
    )
    alerts_health_threshold: int = Field(
        40,
        ge=1,
        le=100,
        description=(
            "For score messages without a churn risk (from older scoring): a health below "
            "this counts as high risk."
        ),
    )
    alerts_rules_file: Path = Field(
        DEFAULT_RULES_FILE, description="YAML file of the alert rules (docs/alerts.md)."
    )
    alerts_channels_file: Path | None = Field(
        None, description="YAML file of the channels and the routing tree; unset: none."
    )
    alerts_webhook_url: AnyHttpUrl | None = Field(
        None,
        description=(
            "Shorthand for one generic webhook channel named `webhook`; exactly its target "
            "(scheme, host and port) is allowed, even over http and on a private address."
        ),
    )
    alerts_webhook_secret: SecretStr | None = Field(
        None, description="Standard Webhooks signing secret (whsec_...) of that channel."
    )
    alerts_account_link: str | None = Field(
        None,
        description="Link to an account in messages, `{account_id}` replaced; unset: the "
        "account's page in the console (VITALS_ALERTS_CONSOLE_URL).",
    )
    alerts_console_url: AnyHttpUrl | None = Field(
        AnyHttpUrl("http://127.0.0.1:8004"),
        description="The console's address as CSMs reach it, for account links in messages; "
        "empty: no link (unless VITALS_ALERTS_ACCOUNT_LINK).",
    )
    alerts_allow_http_targets: bool = Field(
        False, description="Allow http:// webhook targets (https only by default)."
    )
    alerts_target_allowlist: str = Field(
        "",
        description=(
            "Comma-separated hosts, addresses or CIDR networks webhook and SMTP targets may "
            "use although private, loopback or link-local."
        ),
    )
    alerts_admin_token: SecretStr | None = Field(
        None,
        description=(
            "Bearer token of the admin API (channels, routes, silences); unset: admin API off."
        ),
    )
    alerts_delivery_timeout_s: float = Field(
        10.0, gt=0, description="How long one webhook call may take."
    )
    alerts_delivery_max_attempts: int = Field(
        1440,
        ge=1,
        description=(
            "Attempts before a delivery is marked dead (at most a minute apart: about a day)."
        ),
    )
    alerts_retry_max_wait_s: float = Field(
        60.0,
        gt=0,
        description=(
            "Longest wait between two attempts of a delivery, jitter included, unless the "
            "receiver's Retry-After asks for longer: a receiver back up gets its backlog "
            "within this time."
        ),
    )
    alerts_secrets_key: SecretStr | None = Field(
        None,
        description=(
            "Fernet keys (comma-separated) that encrypt channel secrets and URLs in the "
            "database; the first encrypts, every one decrypts (rotation). Required in "
            "production; elsewhere unset: a key kept in var/alerts-secrets.key."
        ),
    )
    alerts_certificates_dir: Path | None = Field(
        None,
        description=(
            "Folder of the CA certificate files e-mail channels may name (`ca_file`); "
            "unset: only inline `ca_pem`."
        ),
    )
    alerts_dispatch_interval_s: float = Field(
        1.0, gt=0, description="How often the dispatcher looks for due deliveries when idle."
    )
    alerts_role: Literal["all", "consume", "dispatch"] = Field(
        "all",
        description=(
            "What this process does: `consume` (score messages to alerts and the outbox, "
            "events to the alerts topic), `dispatch` (deliver the outbox), or `all`."
        ),
    )

    alerts_playbooks_file: Path = Field(
        DEFAULT_PLAYBOOKS_FILE, description="YAML file of the playbooks (docs/playbooks.md)."
    )
    alerts_task_service_levels: dict[Literal["S", "A", "B", "C"], int | None] = Field(
        {"S": 1, "A": 3, "B": 5, "C": None},
        description=(
            'Business days to act on a task per tier, as JSON: {"S": 1, "A": 3, "B": 5, '
            '"C": null}; null: no due time.'
        ),
    )
    alerts_task_grace: dict[Literal["S", "A", "B", "C"], timedelta] = Field(
        {"S": timedelta(hours=4), "A": timedelta(days=1), "B": timedelta(days=2)},
        description=(
            "How long a task may be overdue before the escalation route is told, per tier, "
            'as JSON of seconds or ISO 8601 durations: {"S": "PT4H", "A": "P1D"}.'
        ),
    )
    alerts_business_weekdays: str = Field(
        "Mon Tue Wed Thu Fri",
        pattern=r"^\s*(Mon|Tue|Wed|Thu|Fri|Sat|Sun)(\s+(Mon|Tue|Wed|Thu|Fri|Sat|Sun))*\s*$",
        description="The company's working days, e.g. `Mon Tue Wed Thu Fri`.",
    )
    alerts_business_holidays: list[date] = Field(
        default_factory=list,
        description='Days off besides weekends, as JSON: ["2026-12-25", "2027-01-01"].',
    )
    alerts_business_timezone: str = Field(
        "UTC", description="Time zone of the business calendar, e.g. `Europe/Berlin`."
    )
    alerts_business_day_end: time = Field(
        time(17, 0), description="When a business day ends: a task is due then, local time."
    )
    alerts_task_managers: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Each account owner's manager, for playbook steps owned by `owner_manager`, "
            'as JSON: {"dana@example.com": "maria@example.com"}.'
        ),
    )
    alerts_task_unassigned_queue: str = Field(
        "queue:unassigned",
        description="Owner of a task whose account has no owner (or whose owner no manager).",
    )
    alerts_task_escalation_interval_s: float = Field(
        60.0, gt=0, description="How often overdue tasks are looked for."
    )

    @field_validator("alerts_business_timezone")
    @classmethod
    def _known_zone(cls, zone: str) -> str:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{zone!r} is not a known time zone") from None
        return zone

    @property
    def target_allowlist(self) -> list[str]:
        return [entry.strip() for entry in self.alerts_target_allowlist.split(",") if entry.strip()]

    @field_validator("alerts_secrets_key")
    @classmethod
    def _secrets_key_is_set(cls, key: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if key is None:
            if info.data.get("environment") == "production":
                raise ValueError(
                    "required in production: Fernet keys that encrypt channel secrets "
                    "(docs/alerts.md, 'Secrets at rest')"
                )
            return key
        check_keys(key.get_secret_value())
        return key

    @field_validator("alerts_admin_token")
    @classmethod
    def _admin_token_is_real(
        cls, token: SecretStr | None, info: ValidationInfo
    ) -> SecretStr | None:
        if token is None or info.data.get("environment") != "production":
            return token
        value = token.get_secret_value()
        if value.lower() in PLACEHOLDER_SECRETS or len(value) < MIN_ADMIN_TOKEN_LENGTH:
            raise ValueError(
                f"a placeholder or shorter than {MIN_ADMIN_TOKEN_LENGTH} characters; "
                "set a random secret in production"
            )
        return token

    @field_validator("alerts_console_url", mode="before")
    @classmethod
    def _no_console(cls, value: object) -> object:
        return None if value == "" else value

    def account_link_template(self) -> str | None:
        """How messages link to an account: the template given, else the console's page."""
        if self.alerts_account_link:
            return self.alerts_account_link
        if self.alerts_console_url is None:
            return None
        return f"{str(self.alerts_console_url).rstrip('/')}/accounts/{{account_id}}"
