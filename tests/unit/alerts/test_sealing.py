import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from pydantic import ValidationError

from services.alerts.delivery.channels import open_document, seal_document
from services.alerts.delivery.sealing import SecretBox, SecretsKeyError, box_for, development_key
from services.alerts.settings import AlertsSettings

OLD, NEW = Fernet.generate_key().decode(), Fernet.generate_key().decode()
HOOK_URL = "https://crm.example.com/hooks/vitals?token=very-secret-token"
SIGNING_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_a_sealed_value_opens_again_and_shows_nothing_of_itself() -> None:
    box = SecretBox([OLD])
    sealed = box.seal(SIGNING_SECRET)

    assert sealed.startswith("fernet:") and "MfKQ9r8" not in sealed
    assert box.open(sealed) == SIGNING_SECRET
    assert box.seal(sealed) == sealed  # never sealed twice
    assert box.open("https://stored.before/encryption") == "https://stored.before/encryption"


def test_a_key_is_rotated_by_putting_the_new_one_first() -> None:
    sealed_with_old = SecretBox([OLD]).seal(SIGNING_SECRET)
    rotating = SecretBox([NEW, OLD])
    resealed = rotating.reseal(sealed_with_old)

    assert rotating.open(sealed_with_old) == SIGNING_SECRET
    assert SecretBox([NEW]).open(resealed) == SIGNING_SECRET
    with pytest.raises(SecretsKeyError, match="replaced instead of rotated") as refused:
        SecretBox([NEW]).open(sealed_with_old)
    assert NEW not in str(refused.value) and OLD not in str(refused.value)


def test_a_channel_document_keeps_only_its_secret_fields_sealed() -> None:
    box = SecretBox([OLD])
    hook = {"id": "crm", "kind": "webhook", "url": HOOK_URL, "secret": SIGNING_SECRET}
    mail = {"id": "m", "kind": "email", "host": "smtp.example.com", "username": "vitals"}
    mail |= {"password": "hunter2", "sender": "v@example.com"}

    sealed_hook, sealed_mail = seal_document(hook, box), seal_document(mail, box)

    assert (sealed_hook["id"], sealed_hook["kind"]) == ("crm", "webhook")
    assert "very-secret-token" not in str(sealed_hook) and "MfKQ9r8" not in str(sealed_hook)
    assert (sealed_mail["username"], sealed_mail["host"]) == ("vitals", "smtp.example.com")
    assert "hunter2" not in str(sealed_mail)
    assert open_document(sealed_hook, box) == hook and open_document(sealed_mail, box) == mail


def test_production_refuses_to_start_without_a_key() -> None:
    with pytest.raises(ValidationError, match="alerts_secrets_key"):
        AlertsSettings(environment="production")
    with pytest.raises(SecretsKeyError, match="required in production"):
        box_for(None, "production")
    AlertsSettings(environment="production", alerts_secrets_key=f"{NEW},{OLD}")


def test_a_malformed_key_is_refused_without_showing_it() -> None:
    with pytest.raises(ValidationError, match="key 2 is not a Fernet key") as refused:
        AlertsSettings(alerts_secrets_key=f"{NEW},not-a-key-but-a-secret")

    assert "not-a-key-but-a-secret" not in str(refused.value)


def test_development_keeps_one_key_across_restarts(tmp_path: Path) -> None:
    key_file = tmp_path / "var" / "alerts-secrets.key"
    sealed = box_for(None, "development", key_file).seal(SIGNING_SECRET)

    assert box_for(None, "development", key_file).open(sealed) == SIGNING_SECRET
    assert development_key(key_file) == key_file.read_text().strip()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert list(key_file.parent.iterdir()) == [key_file]  # no draft left behind


def test_a_damaged_development_key_file_is_reported(tmp_path: Path) -> None:
    key_file = tmp_path / "alerts-secrets.key"
    key_file.write_text("garbage")

    with pytest.raises(SecretsKeyError, match="does not hold a Fernet key"):
        development_key(key_file)
