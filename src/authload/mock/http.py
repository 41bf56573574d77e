"""The mock's minimal HTTP layer: request, reply, API errors rendered in each API's shape.

The mock is a plain ASGI app rather than a framework app: it dispatches on (method, path)
from the contracts, so a framework's router and request objects would only add cost on the
hot path (see the README's performance section for the measured difference).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qs

from pydantic import BaseModel, ValidationError

from authload.contracts.base import ErrorStyle

JSON = "application/json"
TEXT = "text/plain; charset=utf-8"

M = TypeVar("M", bound=BaseModel)


@dataclass(slots=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names; the last value wins
    query_string: bytes = b""
    body: bytes = b""
    client: str = ""

    def query(self, name: str) -> str | None:
        values = parse_qs(self.query_string.decode("latin-1")).get(name)
        return values[-1] if values else None


@dataclass(slots=True)
class Reply:
    status: int
    body: bytes = b""
    content_type: str = JSON
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


class ApiError(Exception):
    """A client-visible error; rendered in the shape of the API that raised it."""

    def __init__(
        self,
        status: int,
        message: str,
        fields: dict[str, list[str]] | None = None,
        retry_after_s: int | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.fields = fields
        self.retry_after_s = retry_after_s
        self.headers = headers or []


def json_reply(data: Any, status: int = 200) -> Reply:
    return Reply(status, dump_json(data))


def model_reply(model: BaseModel, status: int = 200) -> Reply:
    return Reply(status, model.model_dump_json().encode())


def dump_json(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode(
        "utf-8", "backslashreplace"
    )


def render_error(error: ApiError, style: ErrorStyle) -> Reply:
    if style is ErrorStyle.PLAIN_TEXT:
        reply = Reply(error.status, error.message.encode("utf-8", "backslashreplace"), TEXT)
    else:
        body: dict[str, Any] = {"message": error.message}
        if error.fields is not None:
            body["errors"] = error.fields
        reply = json_reply(body, error.status)
    reply.headers.extend(error.headers)
    if error.retry_after_s is not None:
        reply.headers.append((b"retry-after", str(error.retry_after_s).encode()))
    return reply


def parse_body(model: type[M], body: bytes, validation_status: int) -> M:
    """Parse and validate a JSON body; every failure is an ApiError naming the field."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise _validation_error(exc, validation_status) from None


def _validation_error(exc: ValidationError, status: int) -> ApiError:
    errors = exc.errors(include_input=False, include_url=False)
    if any(e["type"] == "json_invalid" for e in errors):
        message = "Malformed JSON body: send a JSON object encoded in UTF-8."
        return ApiError(status, message, {"body": [message]})
    fields: dict[str, list[str]] = {}
    for e in errors:
        name = ".".join(str(p) for p in e["loc"]) or "body"
        fields.setdefault(name, []).append(_describe(name, e["type"], e["msg"]))
    first = next(iter(fields.values()))[0]
    more = len(errors) - 1
    message = first if not more else f"{first} (and {more} more error{'s' * (more > 1)})"
    return ApiError(status, message, fields)


def _describe(name: str, kind: str, msg: str) -> str:
    if kind == "missing":
        return f"The {name} field is required."
    if name == "body":
        return "The body must be a JSON object."
    return f"The {name} field is invalid: {msg}."
