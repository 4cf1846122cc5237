"""The OpenAPI document, with the rules FastAPI cannot derive from the signatures: the per-request file
count (a setting), and multipart fields as multipart carries them (an optional part is left out; there is
no null in a form, so a client or fuzzer that sends the text "null" for an image is following a lie)."""
from __future__ import annotations

from typing import Any

from fastapi import FastAPI

PER_FILE_FIELDS = ("files", "captions", "metadata")


def install_openapi(app: FastAPI, max_files: int) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = FastAPI.openapi(app)  # generated and cached by FastAPI; completed here, once
            for body in _multipart_bodies(schema):
                _state_form_rules(body, max_files)
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]


def _multipart_bodies(schema: dict[str, Any]) -> list[dict[str, Any]]:
    components = schema.get("components", {}).get("schemas", {})
    bodies = []
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            content = operation.get("requestBody", {}).get("content", {})
            ref = content.get("multipart/form-data", {}).get("schema", {}).get("$ref", "")
            if ref.startswith("#/components/schemas/"):
                bodies.append(components[ref.rsplit("/", 1)[-1]])
    return bodies


def _state_form_rules(body: dict[str, Any], max_files: int) -> None:
    for name, field in body.get("properties", {}).items():
        alternatives = [s for s in field.get("anyOf", []) if s.get("type") != "null"]
        if "anyOf" in field and len(alternatives) == 1:
            del field["anyOf"]
            field.update(alternatives[0])
        if name in PER_FILE_FIELDS and field.get("type") == "array":
            field["maxItems"] = max_files
            if name == "files":
                field["minItems"] = 1
