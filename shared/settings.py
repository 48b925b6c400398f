"""Settings common to every service.

Every setting is an environment variable with the ``VITALS_`` prefix: the field
``kafka_bootstrap_servers`` is read from ``VITALS_KAFKA_BOOTSTRAP_SERVERS``. Each
service subclasses :class:`VitalsSettings` and adds its own fields.
"""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.auth import UNAUTHENTICATED_RATE, KeyRing, KeysFileError, load_keys_file, parse_rate

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
    lag_probe_interval_s: float = Field(
        15.0,
        gt=0,
        description="How often consumer lag is measured from the broker and the stored positions.",
    )
    publisher_stuck_after_s: float = Field(
        120.0,
        gt=0,
        description=(
            "An outbox whose oldest row waits longer than this to reach its topic is named "
            "as a stuck publisher on /readyz."
        ),
    )

    api_keys_file: Path | None = Field(
        None,
        description=(
            "YAML file of the API keys (hashed; `vitals keys create`); unset: keys are not "
            "checked, which production refuses."
        ),
    )
    api_rate_limit: str = Field(
        "1000/second", description="Requests allowed per API key unless its entry says otherwise."
    )
    api_unauthenticated_rate_limit: str = Field(
        UNAUTHENTICATED_RATE,
        description="Requests without a valid key allowed per client address (then 429).",
    )
    trusted_proxies: Annotated[list[IPv4Network | IPv6Network], NoDecode] = Field(
        default_factory=list,
        description=(
            "Addresses or CIDR networks of the proxies in front of the service (the "
            "ingress), comma-separated: only a connection from one of them may name the "
            "client in X-Forwarded-For and the scheme in X-Forwarded-Proto. Empty: no one "
            "may, and a client's address is the connection's."
        ),
    )

    @field_validator("api_keys_file")
    @classmethod
    def _keys_file_is_valid(cls, path: Path | None) -> Path | None:
        # Checked with the settings, so `vitals config check` and start-up both name the
        # file and the field of a broken keys file.
        if path is not None:
            try:
                load_keys_file(path)
            except KeysFileError as exc:
                raise ValueError(str(exc)) from None
        return path

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _proxies_are_addresses_or_networks(cls, value: object) -> object:
        # Comma-separated in the environment, a list in code. Each entry is checked here:
        # uvicorn would take a misspelt one for a name no client has, and trust no one
        # without a word.
        entries = value.split(",") if isinstance(value, str) else value
        if not isinstance(entries, list | tuple):
            return value
        networks: list[IPv4Network | IPv6Network] = []
        for entry in entries:
            text = str(entry).strip()
            if not text:
                continue
            if text == "*":
                raise ValueError(
                    "'*' would let every client choose its own address: name the proxies' "
                    "addresses or networks, e.g. 10.0.0.0/8"
                )
            try:
                networks.append(ip_network(text))
            except ValueError:
                try:
                    meant = ip_network(text, strict=False)
                except ValueError:
                    raise ValueError(
                        f"{text!r} is not an IP address or a CIDR network such as 10.0.0.0/8"
                    ) from None
                raise ValueError(f"{text!r} has host bits set: the network is {meant}") from None
        return networks

    @field_validator("api_rate_limit", "api_unauthenticated_rate_limit")
    @classmethod
    def _rate_is_a_limit(cls, rate: str) -> str:
        parse_rate(rate)
        return rate

    def keyring(self) -> KeyRing:
        """The API keys to check requests against (auth off without a file, outside
        production)."""
        return KeyRing.from_file(
            self.api_keys_file,
            self.api_rate_limit,
            self.environment,
            unauthenticated_rate=self.api_unauthenticated_rate_limit,
        )

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _servers_are_host_port(cls, value: str) -> str:
        for server in value.split(","):
            host, sep, port = server.strip().rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"{server!r} is not host:port")
        return value
