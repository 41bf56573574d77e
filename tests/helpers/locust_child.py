"""Run Locust-dependent test code in a fresh interpreter: importing Locust monkey-patches the
process with gevent, which must not happen in the pytest process the other tests share."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_child(module: str, main: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``main(*args)`` of ``module`` (a test module passes its ``__name__``) in a new
    interpreter that imports Locust first."""
    code = f"import locust, sys; from {module} import {main}; {main}(*sys.argv[1:])"
    return subprocess.run(
        [sys.executable, "-W", "error", "-c", code, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
