"""Writes kubeconform's schema folders, offline.

kubernetes-validate (PyPI) ships the Kubernetes schemas split in two: each kind's file
has an https://kubernetes.io/... ``$id`` and refers to ``/api/_definitions.json``, which
kubeconform would fetch over HTTP. Here each kind's file is made self-contained: the
definitions it reaches are copied into its own ``$defs`` (parsing all of
_definitions.json for every kind also made a check 8 times slower). Each CRD's
openAPIV3Schema becomes one file more, closed (``additionalProperties: false``) in the
strict folder the way kubeconform's openapi2jsonschema.py closes CRD schemas.

Run by deploy/local/tools.sh with the interpreter that has kubernetes-validate:
``python kubernetes_schemas.py OUT_DIR "1.30.0 1.37.0" CRD.yaml...``.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

SHARED_DEFINITIONS = "/api/_definitions.json#/$defs/"
OWN_DEFINITIONS = "#/$defs/"


def objects(node: Any) -> Iterator[dict[str, Any]]:
    """Every mapping in ``node``, each before what it holds (which may change meanwhile)."""
    if isinstance(node, dict):
        yield node
        children: list[Any] = list(node.values())
    elif isinstance(node, list):
        children = node
    else:
        return
    for child in children:
        yield from objects(child)


def definition_refs(node: Any) -> Iterator[str]:
    """Names of the definitions node refers to, shared or already local."""
    for mapping in objects(node):
        ref = mapping.get("$ref")
        if isinstance(ref, str) and "#/$defs/" in ref:
            yield ref.split("#/$defs/", 1)[1]


def localised(node: Any) -> Any:
    for mapping in objects(node):
        mapping.pop("$id", None)
        ref = mapping.get("$ref")
        if isinstance(ref, str) and ref.startswith(SHARED_DEFINITIONS):
            mapping["$ref"] = OWN_DEFINITIONS + ref[len(SHARED_DEFINITIONS) :]
    return node


def self_contained(schema: dict[str, Any], definitions: dict[str, Any]) -> Any:
    reached: set[str] = set()
    pending = list(definition_refs(schema))
    while pending:
        name = pending.pop()
        if name not in reached:
            reached.add(name)
            pending.extend(definition_refs(definitions[name]))
    schema["$defs"] = {name: copy.deepcopy(definitions[name]) for name in sorted(reached)}
    return localised(schema)


def closed(node: Any) -> Any:
    """Every object schema with properties refuses others, unless it keeps unknown fields."""
    for mapping in objects(node):
        if (
            "properties" in mapping
            and "additionalProperties" not in mapping
            and not mapping.get("x-kubernetes-preserve-unknown-fields")
        ):
            mapping["additionalProperties"] = False
    return node


def crd_schemas(crd_file: str) -> Iterator[tuple[str, Any]]:
    """(file name, schema) of each version of each CRD in crd_file, named as kubeconform
    looks them up: kind-first label of the group-version.json."""
    for crd in yaml.safe_load_all(Path(crd_file).read_text()):
        if not crd or crd.get("kind") != "CustomResourceDefinition":
            continue
        spec = crd["spec"]
        group = spec["group"].split(".")[0]
        for version in spec["versions"]:
            name = f"{spec['names']['kind']}-{group}-{version['name']}.json".lower()
            yield name, version["schema"]["openAPIV3Schema"]


def main(out_dir: str, versions: str, crd_files: list[str]) -> None:
    package = importlib.util.find_spec("kubernetes_validate")
    if package is None or package.origin is None:
        sys.exit("kubernetes-validate is not installed in this interpreter")
    shipped = Path(package.origin).parent / "kubernetes-json-schema"
    out = Path(out_dir)
    shutil.rmtree(out, ignore_errors=True)
    for version in versions.split():
        for variant in ("local", "local-strict"):
            source = shipped / f"v{version}-{variant}"
            if not source.is_dir():
                sys.exit(f"kubernetes-validate has no schemas for Kubernetes {version}")
            definitions = json.loads((source / "_definitions.json").read_text())["$defs"]
            target = out / f"v{version}-{variant}"
            target.mkdir(parents=True)
            for path in source.glob("*.json"):
                schema = json.loads(path.read_text())
                # Only the API's kinds: kubeconform looks schemas up by kind.
                if "x-kubernetes-group-version-kind" in schema:
                    (target / path.name).write_text(json.dumps(self_contained(schema, definitions)))
            for crd_file in crd_files:
                for name, schema in crd_schemas(crd_file):
                    if variant == "local-strict":
                        schema = closed(copy.deepcopy(schema))
                    (target / name).write_text(json.dumps(schema))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
