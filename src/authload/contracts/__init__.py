"""The two APIs under test, defined once: endpoints, models, error shapes, token formats."""

from __future__ import annotations

from authload.contracts import gigma, mobile
from authload.contracts.base import Api, Auth, Contract, Endpoint, ErrorStyle

ENDPOINTS: dict[str, Endpoint] = {e.name: e for e in (*gigma.ENDPOINTS, *mobile.ENDPOINTS)}
APIS: dict[str, Api] = {gigma.API.name: gigma.API, mobile.API.name: mobile.API}

__all__ = [
    "APIS",
    "ENDPOINTS",
    "Api",
    "Auth",
    "Contract",
    "Endpoint",
    "ErrorStyle",
    "gigma",
    "mobile",
]
