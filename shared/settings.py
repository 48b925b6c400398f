"""Settings common to every service.

Every setting is an environment variable with the ``VITALS_`` prefix: the field
``kafka_bootstrap_servers`` is read from ``VITALS_KAFKA_BOOTSTRAP_SERVERS``. Each
service subclasses :class:`VitalsSettings` and adds its own fields.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Environment = Literal["development", "test", "production"]


class VitalsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VITALS_", extra="ignore", frozen=True)

    environment: Environment = Field("development", description="development, test or production.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Log level of the JSON logs on stderr."
    )
    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092", description="Kafka bootstrap servers, comma-separated host:port."
    )
    kafka_client_id_prefix: str = Field(
        "vitals", description="Prefix of the Kafka client ids, to tell services apart."
    )
    topic_partitions: int = Field(
        6, ge=1, description="Partitions of the topics a service creates."
    )
    topic_replication_factor: int = Field(
        1, ge=1, description="Replication factor of the topics a service creates."
    )
    events_topic: str = Field("vitals.events", description="Normalised events topic.")
    scores_topic: str = Field("vitals.scores", description="Score changes topic (compacted).")
    dlq_topic: str = Field(
        "vitals.events.dlq", description="Dead letters: rejected input with its reason."
    )
    alerts_topic: str = Field(
        "vitals.alerts", description="Every alert transition, for downstream systems."
    )
    startup_retry_max_s: float = Field(
        30.0, gt=0, description="Longest wait between reconnect attempts to Kafka or the database."
    )

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _servers_are_host_port(cls, value: str) -> str:
        for server in value.split(","):
            host, sep, port = server.strip().rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"{server!r} is not host:port")
        return value


def masked(secret: SecretStr | str | None) -> str:
    """Show that a secret is set without showing it."""
    if secret is None:
        return "(unset)"
    value = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    return "(unset)" if not value else "****"
