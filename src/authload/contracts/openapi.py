"""OpenAPI 3.1 document generated from the contracts (served by the mock, printed by the CLI)."""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from authload.contracts import ENDPOINTS
from authload.contracts.base import Auth, Contract, Endpoint, ErrorStyle
from authload.contracts.gigma import Message, ValidationErrorBody

_REF = "#/components/schemas/{model}"

BEHAVIOUR_ERRORS = {
    429: "rate limit of the mock's behaviour model (per phone, or per address when set)",
    500: "a fault window of the mock's behaviour model",
    502: "a fault window of the mock's behaviour model",
    503: "load shed by the mock's behaviour model (capacity), or a fault window",
    504: "a fault window of the mock's behaviour model",
}
"""Statuses the mock's behaviour model can answer on any endpoint, whether or not the seed
lists them: documented so that the document is what the mock serves. Marked
``x-authload-behaviour`` where the contract itself does not list them."""


def _schemas() -> dict[str, Any]:
    models: set[type[Contract]] = {Message, ValidationErrorBody}
    for e in ENDPOINTS.values():
        models.update(m for m in (e.request, e.response) if m is not None)
    ordered = sorted(models, key=lambda m: (m.__module__, m.__name__))
    names = {m.__name__ for m in ordered}
    assert len(names) == len(ordered), "contract model names must be unique across APIs"
    _, top = models_json_schema([(m, "validation") for m in ordered], ref_template=_REF)
    schemas: dict[str, Any] = top.get("$defs", {})
    return schemas


def _error_response(e: Endpoint, status: int, text: str) -> dict[str, Any]:
    if e.api.error_style is ErrorStyle.PLAIN_TEXT:
        content = {"text/plain": {"schema": {"type": "string"}}}
    else:
        body = ValidationErrorBody if status == 422 else Message
        content = {"application/json": {"schema": _ref(body)}}
    return {"description": text, "content": content}


def _errors(e: Endpoint) -> dict[str, Any]:
    """The contract's error answers, then the behaviour model's that the contract lacks."""
    errors = {str(s): _error_response(e, s, t) for s, t in e.errors.items()}
    for status, text in BEHAVIOUR_ERRORS.items():
        if status not in e.errors:
            errors[str(status)] = {**_error_response(e, status, text), "x-authload-behaviour": True}
    return dict(sorted(errors.items()))


def _ref(model: type[Contract]) -> dict[str, str]:
    return {"$ref": _REF.format(model=model.__name__)}


def _operation(e: Endpoint) -> dict[str, Any]:
    ok: dict[str, Any] = {"description": "OK"}
    if e.response is not None:
        ok["content"] = {"application/json": {"schema": _ref(e.response)}}
    op: dict[str, Any] = {
        "operationId": e.name,
        "summary": e.summary,
        "tags": [e.api.name],
        "responses": {"200": ok, **_errors(e)},
    }
    if e.request is not None:
        op["requestBody"] = {
            "required": any(f.is_required() for f in e.request.model_fields.values()),
            "content": {"application/json": {"schema": _ref(e.request)}},
        }
    security: dict[str, list[str]] = {}
    if e.api.app_header:
        security["appToken"] = []
    if e.auth is Auth.BEARER:
        security["bearer"] = []
    if security:
        op["security"] = [security]
    return op


def openapi_document(server_url: str | None = None) -> dict[str, Any]:
    schemas = _schemas()
    paths: dict[str, dict[str, Any]] = {}
    for e in ENDPOINTS.values():
        paths.setdefault(e.path, {})[e.method.lower()] = _operation(e)
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "authload mock: Gigma counterparty auth and mobile v2 auth",
            "version": "1",
            "description": "Generated from authload.contracts; the mock serves exactly this.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "appToken": {"type": "apiKey", "in": "header", "name": "Token"},
                "bearer": {"type": "http", "scheme": "bearer"},
            },
        },
    }
    if server_url:
        doc["servers"] = [{"url": server_url}]
    return doc
