"""Turning multipart form parts into service inputs, with size caps and JSON checks."""
from __future__ import annotations

import json
from typing import Any

from fastapi import UploadFile

from webserver.errors import InvalidInput, PayloadTooLarge
from webserver.services.images import Upload


def read_capped(file: UploadFile, max_bytes: int) -> bytes:
    data = file.file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"{file.filename or 'upload'}: over the {max_bytes}-byte upload limit.")
    return data


MAX_JSON_CHARS = 65536


def _no_constants(name: str) -> Any:
    raise InvalidInput(f"{name} is not JSON (numbers must be finite).")


def parse_json_object(text: str | None, what: str) -> dict[str, Any] | None:
    """A JSON object from a form field: bounded in size, NaN/Infinity refused, nesting too deep for the
    parser refused (services check the depth they allow)."""
    if text is None or not text.strip():
        return None
    if len(text) > MAX_JSON_CHARS:
        raise PayloadTooLarge(f"{what} is over {MAX_JSON_CHARS} characters of JSON.")
    try:
        value = json.loads(text, parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{what} is not valid JSON: {exc.msg} at character {exc.pos}.") from None
    except RecursionError:
        raise InvalidInput(f"{what} is nested too deep.") from None
    if not isinstance(value, dict):
        raise InvalidInput(f"{what} must be a JSON object, e.g. {{\"label\": \"dress\"}}.")
    return value


def per_file(values: list[str] | None, count: int, what: str) -> list[str | None]:
    if not values:
        return [None] * count
    if len(values) != count:
        raise InvalidInput(f"Got {len(values)} {what} for {count} files: send one per file, in order.")
    return list(values)


def uploads_from_form(files: list[UploadFile], captions: list[str] | None, metadata: list[str] | None,
                      *, max_bytes: int, max_files: int) -> list[Upload]:
    if not files:
        raise InvalidInput("Send at least one file in the 'files' field.")
    if len(files) > max_files:
        raise InvalidInput(f"At most {max_files} files per request.")
    caption_list = per_file(captions, len(files), "captions")
    meta_list = per_file(metadata, len(files), "metadata entries")
    return [Upload(data=read_capped(file, max_bytes), filename=file.filename or f"file{i}",
                   caption=caption,
                   meta=parse_json_object(meta, f"metadata for {file.filename or f'file {i}'}") or {})
            for i, (file, caption, meta) in enumerate(zip(files, caption_list, meta_list, strict=True))]


def optional_upload(file: UploadFile | None, max_bytes: int) -> Upload | None:
    """A browser sends an empty, nameless part for an unused file input: that means no file."""
    if file is None:
        return None
    data = read_capped(file, max_bytes)
    if not data and not file.filename:
        return None
    return Upload(data=data, filename=file.filename or "query image")
