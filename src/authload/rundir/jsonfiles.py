"""The run directory's JSON files, written whole and atomically, read with clear errors."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from pydantic import BaseModel, ValidationError

from authload.errors import ResultsError


def plain(value: Any) -> Any:
    """``value`` as strict JSON can hold it: NaN and infinities as None (JSON has neither, and
    a missing figure must read as missing), numpy scalars as Python numbers, tuples as lists,
    keys as strings, models as their JSON data."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` (made :func:`plain`) as indented UTF-8 JSON, atomically (temporary file,
    then rename)."""
    text = json.dumps(plain(data), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    partial = path.with_name(f".{path.name}.partial")
    try:
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def read_json(path: Path) -> Any:
    """Read a run directory JSON file; a missing or broken file is a :class:`ResultsError`."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ResultsError(f"{path}: missing") from exc
    except (OSError, ValueError) as exc:
        raise ResultsError(f"{path}: unreadable: {exc}") from exc


M = TypeVar("M", bound=BaseModel)


def read_model(path: Path, model: type[M]) -> M:
    """A run directory's JSON file as ``model``; a :class:`ResultsError` that names the file
    and the field when it is missing, unreadable or not what ``model`` holds."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise ResultsError(f"{path}: not a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problem = exc.errors()[0]
        field = ".".join(str(p) for p in problem["loc"]) or "(the file)"
        raise ResultsError(f"{path}: {field}: {problem['msg']}") from None
