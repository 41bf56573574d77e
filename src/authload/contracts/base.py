"""Building blocks shared by both API contracts: the endpoint record and error shapes."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from pydantic import BaseModel, ConfigDict


class ErrorStyle(Enum):
    """How an API writes its error bodies."""

    JSON_MESSAGE = "json"  # Gigma (Laravel): {"message": "...", "errors": {field: [...]}}
    PLAIN_TEXT = "text"  # mobile v2: the body is the message itself


class Auth(Enum):
    NONE = "none"
    BEARER = "bearer"  # Authorization: Bearer <token>


@dataclass(frozen=True)
class Api:
    """One of the two APIs under test."""

    name: str
    title: str
    error_style: ErrorStyle
    app_header: str | None = None  # header every call must carry (Gigma's `Token`)


class Contract(BaseModel):
    """Base of request and response models: extra fields are tolerated, as real clients do."""

    model_config = ConfigDict(extra="ignore")


@dataclass(frozen=True)
class Endpoint:
    """One endpoint, defined once: the mock serves it, clients call and check it."""

    name: str  # e.g. "gigma.login": used in records, metrics labels, SLOs, reports
    api: Api
    method: str
    path: str
    summary: str
    request: type[Contract] | None
    response: type[Contract] | None  # None: a 200 with no body of interest
    errors: dict[int, str] = field(default_factory=dict)
    auth: Auth = Auth.NONE

    def parse_response(self, body: bytes) -> Contract | None:
        """Validate a 200 body against the contract; raises pydantic.ValidationError."""
        if self.response is None:
            return None
        return self.response.model_validate_json(body)
