"""The OpenAPI document, with the rules FastAPI cannot derive from the signatures: the per-request file
count (a setting), and multipart fields as multipart carries them (an optional part is left out; there is
no null in a form, so a client or fuzzer that sends the text "null" for an image is following a lie)."""
from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from config import Settings

PER_FILE_FIELDS = ("files", "captions", "metadata")


def install_openapi(app: FastAPI, settings: Settings) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = FastAPI.openapi(app)  # generated and cached by FastAPI; completed here, once
            for body in _multipart_bodies(schema):
                _state_form_rules(body, settings.MAX_FILES_PER_REQUEST)
            _state_security(schema, {"write_key": bool(settings.write_keys), "read_key": bool(settings.read_keys)})
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]


def _state_security(schema: dict[str, Any], enforced: dict[str, bool]) -> None:
    """Operations name a key scheme only where its keys are set: without API_KEYS no key is asked for."""
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            needed = [req for req in operation.get("security", []) if all(enforced.get(n) for n in req)]
            if needed:
                operation["security"] = needed
            else:
                operation.pop("security", None)
    schemes = schema.get("components", {}).get("securitySchemes", {})
    for name in [n for n in schemes if not enforced.get(n)]:
        del schemes[name]
    if "securitySchemes" in schema.get("components", {}) and not schemes:
        del schema["components"]["securitySchemes"]


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
