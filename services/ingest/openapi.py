"""Bodies are read by hand (size limit first), so FastAPI cannot see their models:
describe them in the OpenAPI schema here."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from shared.openapi import amend_openapi

REF = "#/components/schemas/{model}"

BodyModels = dict[str, dict[str, list[type[BaseModel]]]]
"""path -> media type -> the models a body may be (one of)."""

SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "An API key, vk_..."},
    "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "basic": {
        "type": "http",
        "scheme": "basic",
        "description": "The API key as username, empty password (Segment's write key).",
    },
}
KEY_SECURITY: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKeyHeader": []}, {"basic": []}]


def document_request_bodies(
    app: FastAPI, bodies: BodyModels, keyed_paths: frozenset[str] = frozenset()
) -> None:
    """Describe ``bodies``; ``keyed_paths`` need an API key with the ``ingest`` scope."""

    def describe_bodies(schema: dict[str, Any]) -> None:
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for path, media_types in bodies.items():
            content = {}
            for media_type, models in media_types.items():
                refs = [_component(components, model) for model in models]
                content[media_type] = {"schema": refs[0] if len(refs) == 1 else {"oneOf": refs}}
            schema["paths"][path]["post"]["requestBody"] = {"required": True, "content": content}
        if keyed_paths:
            schema["components"]["securitySchemes"] = SECURITY_SCHEMES
        for path in keyed_paths:
            schema["paths"][path]["post"]["security"] = KEY_SECURITY

    amend_openapi(app, describe_bodies)


def _component(components: dict[str, Any], model: type[BaseModel]) -> dict[str, str]:
    model_schema = model.model_json_schema(ref_template=REF)
    components.update(model_schema.pop("$defs", {}))
    components[model.__name__] = model_schema
    return {"$ref": REF.format(model=model.__name__)}
