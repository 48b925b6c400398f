"""Bodies are read by hand (size limit first), so FastAPI cannot see their models:
describe them in the OpenAPI schema here."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from shared.openapi import API_KEY, amend_openapi

REF = "#/components/schemas/{model}"
ALSO_ACCEPTED = "x-also-accepted"
"""Media types a path takes besides the one in ``content``: one body type per operation
is what client generators handle (openapi-python-client cannot import an operation
whose body is a union over several media types)."""

BodyModels = dict[str, dict[str, list[type[BaseModel]]]]
"""path -> media type -> the models a body may be (one of); the first media type is
the one a generated client sends."""


def document_request_bodies(
    app: FastAPI, bodies: BodyModels, keyed_paths: frozenset[str] = frozenset()
) -> None:
    """Describe ``bodies``; ``keyed_paths`` need an API key with the ``ingest`` scope."""

    def describe_bodies(schema: dict[str, Any]) -> None:
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for path, media_types in bodies.items():
            described = {
                media_type: _schema(components, models)
                for media_type, models in media_types.items()
            }
            (first, content), *others = described.items()
            body: dict[str, Any] = {"required": True, "content": {first: {"schema": content}}}
            if others:
                body[ALSO_ACCEPTED] = {media_type: {"schema": s} for media_type, s in others}
                body["description"] = "Also accepted (see the operation): " + "; ".join(
                    f"`{media_type}`" for media_type, _ in others
                )
            schema["paths"][path]["post"]["requestBody"] = body
        if keyed_paths:
            schemes = schema["components"].setdefault("securitySchemes", {})
            schemes.update({name: dict(scheme) for name, scheme in API_KEY.schemes.items()})
        for path in keyed_paths:
            schema["paths"][path]["post"]["security"] = API_KEY.requirement

    amend_openapi(app, describe_bodies)


def _schema(components: dict[str, Any], models: list[type[BaseModel]]) -> dict[str, Any]:
    refs = [_component(components, model) for model in models]
    return refs[0] if len(refs) == 1 else {"oneOf": refs}


def _component(components: dict[str, Any], model: type[BaseModel]) -> dict[str, str]:
    model_schema = model.model_json_schema(ref_template=REF)
    components.update(model_schema.pop("$defs", {}))
    components[model.__name__] = model_schema
    return {"$ref": REF.format(model=model.__name__)}
