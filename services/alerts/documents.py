"""JSON documents (configuration files, admin API bodies, payloads): their type, reading
them, and errors that name each bad field the way it is written in the document."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import JsonValue, ValidationError

JsonObject = dict[str, JsonValue]


class ConfigError(ValueError):
    """A configuration document is invalid; the message names every bad field."""


def load_yaml(path: Path) -> object:
    try:
        document: object = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return document


def describe_errors(exc: ValidationError, document: object, source: str) -> str:
    """One line per error, naming the field the way it is written in the file."""
    lines = [f"{source} is invalid:"]
    for error in exc.errors(include_url=False):
        lines.append(f"  {field_path(error['loc'], document)}: {error['msg']}")
    return "\n".join(lines)


def field_path(loc: tuple[int | str, ...], document: object) -> str:
    """``("rules", 1, "sharp_health_drop", "points")`` -> ``rules[1] (name).points``."""
    text, node = "", document
    for part in loc:
        if isinstance(part, int):
            node = node[part] if isinstance(node, list) and part < len(node) else None
            name = (node.get("name") or node.get("id")) if isinstance(node, dict) else None
            text += f"[{part}]" + (f" ({name})" if isinstance(name, str) else "")
        elif isinstance(node, dict) and "kind" in node and part == node.get("kind"):
            continue  # the union tag pydantic adds is not a field of the file
        else:
            node = node.get(part) if isinstance(node, dict) else None
            text += f".{part}" if text else str(part)
    return text or "(document)"
