"""Keys files for tests: real keys, hashed the way production stores them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import yaml

from shared.auth import Scope, generate_key


def make_keys_file(
    directory: Path, scopes_by_name: Mapping[str, Iterable[Scope]], rate: str | None = None
) -> tuple[Path, dict[str, str]]:
    """A keys file in ``directory`` with one key per name; returns it and the keys."""
    keys: dict[str, str] = {}
    entries = []
    for name, scopes in scopes_by_name.items():
        key, entry = generate_key(name, set(scopes), rate)
        keys[name] = key
        entries.append(entry.model_dump(mode="json", exclude_none=True))
    path = directory / "api-keys.yaml"
    path.write_text(yaml.safe_dump({"keys": entries}))
    return path, keys
