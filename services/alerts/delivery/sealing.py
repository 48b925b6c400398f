"""Channel secrets encrypted at rest: Fernet (AES-128-CBC + HMAC-SHA256) with key rotation.

A channel's secret fields (webhook URLs, which embed their token, signing secrets,
SMTP passwords) are stored as ``fernet:<token>``; everything else in the channel
document stays readable. ``VITALS_ALERTS_SECRETS_KEY`` holds one or more keys: the
first encrypts, every one decrypts, so a key is rotated by putting the new one first.
Outside production an unset key means a key generated once into ``var/`` and kept
there, so that a development database stays readable across restarts.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import JsonValue

from services.alerts.documents import JsonObject

SEALED = "fernet:"
DEVELOPMENT_KEY_FILE = Path("var/alerts-secrets.key")


class SecretsKeyError(Exception):
    """No usable key, or a stored secret that no configured key opens."""


def check_keys(text: str) -> list[str]:
    """The comma-separated Fernet keys of ``text``; the error never shows a key."""
    keys = [key.strip() for key in text.split(",") if key.strip()]
    if not keys:
        raise ValueError("no key given")
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except ValueError:
            raise ValueError(
                f"key {position} is not a Fernet key (32 url-safe base64-encoded bytes)"
            ) from None
    return keys


class SecretBox:
    def __init__(self, keys: list[str]) -> None:
        checked = check_keys(",".join(keys))
        self._fernet = MultiFernet([Fernet(key) for key in checked])
        # Old keys listed after the first: stored secrets are to be sealed again.
        self.rotating = len(checked) > 1

    def seal(self, text: str) -> str:
        if text.startswith(SEALED):
            return text
        return SEALED + self._fernet.encrypt(text.encode()).decode()

    def open(self, text: str) -> str:
        """The plain value; a value stored before encryption is returned as it is."""
        if not text.startswith(SEALED):
            return text
        try:
            return self._fernet.decrypt(text[len(SEALED) :].encode()).decode()
        except InvalidToken:
            raise SecretsKeyError(
                "a stored channel secret does not open with VITALS_ALERTS_SECRETS_KEY: "
                "a key was replaced instead of rotated (keep the old key after the new one)"
            ) from None

    def reseal(self, text: str) -> str:
        """``text`` sealed with the first key (for rotation)."""
        return self.seal(self.open(text))


def box_for(key: str | None, environment: str, key_file: Path = DEVELOPMENT_KEY_FILE) -> SecretBox:
    """The box of the configured keys; outside production, without keys, the key file's."""
    if key:
        return SecretBox(check_keys(key))
    if environment == "production":
        raise SecretsKeyError("VITALS_ALERTS_SECRETS_KEY is required in production")
    return SecretBox([development_key(key_file)])


def development_key(path: Path) -> str:
    """The key in ``path``, made there (readable by the owner only) on first use."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as out:
            out.write(Fernet.generate_key())
        # A link never replaces a file: two processes starting at once keep one key.
        with contextlib.suppress(FileExistsError):
            os.link(draft, path)
        draft.unlink()
    key = path.read_text().strip()
    try:
        Fernet(key)
    except ValueError:
        raise SecretsKeyError(f"{path} does not hold a Fernet key") from None
    return key


# --- the key in use -------------------------------------------------------------------------
# The channel table encrypts and decrypts in its column type (models.SealedDocument), below
# every query, so no caller can store a secret in the clear. A column type has no way to
# the service's settings: the service sets its box here when it loads its configuration.

_in_use: SecretBox | None = None


def use(box: SecretBox) -> None:
    global _in_use
    _in_use = box


def in_use() -> SecretBox:
    if _in_use is None:
        raise SecretsKeyError("no secrets key in use: load the alerts configuration first")
    return _in_use


@contextlib.contextmanager
def using(box: SecretBox) -> Iterator[None]:
    """``box`` in use for a while (tests, migrations), the previous one after."""
    global _in_use
    previous, _in_use = _in_use, box
    try:
        yield
    finally:
        _in_use = previous


def transform(
    document: Mapping[str, JsonValue], secret_fields: frozenset[str], change: Callable[[str], str]
) -> JsonObject:
    """``document`` with ``change`` applied to its secret fields that hold text."""
    return {
        name: change(value) if name in secret_fields and isinstance(value, str) else value
        for name, value in document.items()
    }
