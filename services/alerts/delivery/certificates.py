"""CA certificate files of e-mail channels: read only from the certificates directory.

A channel names its file; an administrator could otherwise name any file the service
can read (``/etc/shadow``). The path is resolved (``..`` and symlinks followed) and must
stay inside ``VITALS_ALERTS_CERTIFICATES_DIR``; whether a file outside exists is never
told, and no error quotes a file's content.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path

from services.alerts.documents import ConfigError

MAX_BYTES = 1 << 20


def pem_certificates(text: str) -> str:
    """``text`` if it holds PEM certificates (checked in memory); the error never quotes it."""
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise ValueError("not PEM certificates (-----BEGIN CERTIFICATE----- ...)")
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=text)
    except (ssl.SSLError, ValueError):
        raise ValueError("not valid PEM certificates") from None
    return text


class CertificateRefused(ConfigError):
    """The certificate file is not allowed or not usable; a retry will not change that."""


def certificate_path(ca_file: Path, directory: Path | None) -> Path:
    """Where ``ca_file`` really is, if inside ``directory``."""
    if directory is None:
        raise CertificateRefused(
            "ca_file: no certificate files are allowed: set VITALS_ALERTS_CERTIFICATES_DIR "
            "or give the certificates inline as ca_pem"
        )
    root = directory.resolve()
    # Non-strict: a missing file outside is refused like an existing one.
    path = (root / ca_file).resolve()
    if not path.is_relative_to(root) or path == root:
        raise CertificateRefused(f"ca_file: {ca_file} is not inside the certificates directory")
    return path


def read_certificates(ca_file: Path, directory: Path | None) -> str:
    """The PEM text of ``ca_file``, checked to be inside ``directory`` and to be
    certificates."""
    path = certificate_path(ca_file, directory)
    try:
        # No symlink is followed after the check above resolved the path.
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(descriptor, "rb") as source:
            data = source.read(MAX_BYTES + 1)
    except OSError as exc:
        problem = exc.strerror or type(exc).__name__
        raise CertificateRefused(f"ca_file: {ca_file} cannot be read: {problem}") from None
    if len(data) > MAX_BYTES:
        raise CertificateRefused(f"ca_file: {ca_file} is larger than {MAX_BYTES} bytes")
    try:
        return pem_certificates(data.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise CertificateRefused(f"ca_file: {ca_file} does not hold PEM certificates") from None
