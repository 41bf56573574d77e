"""The run directory's JSON files, written whole and atomically, read with clear errors."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from authload.errors import ResultsError


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented UTF-8 JSON, atomically (temporary file, then rename)."""
    text = json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
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
