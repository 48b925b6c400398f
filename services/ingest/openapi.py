"""Bodies are read by hand (size limit first), so FastAPI cannot see their models:
describe them in the OpenAPI schema here."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

REF = "#/components/schemas/{model}"

BodyModels = dict[str, dict[str, list[type[BaseModel]]]]
"""path -> media type -> the models a body may be (one of)."""


def document_request_bodies(app: FastAPI, bodies: BodyModels) -> None:
    base_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = base_openapi()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for path, media_types in bodies.items():
            content = {}
            for media_type, models in media_types.items():
                refs = [_component(components, model) for model in models]
                content[media_type] = {"schema": refs[0] if len(refs) == 1 else {"oneOf": refs}}
            schema["paths"][path]["post"]["requestBody"] = {"required": True, "content": content}
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _component(components: dict[str, Any], model: type[BaseModel]) -> dict[str, str]:
    model_schema = model.model_json_schema(ref_template=REF)
    components.update(model_schema.pop("$defs", {}))
    components[model.__name__] = model_schema
    return {"$ref": REF.format(model=model.__name__)}
