"""The garbage collection settings of a load-generating process (``AUTHLOAD_GC``). Each case
runs in a fresh interpreter: the settings are process-wide."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from authload.gc_tuning import GC_ENV, GEN0_THRESHOLD

CHILD = """
import gc, json
from authload import gc_tuning
before = list(gc.get_threshold())
kept = [[i] for i in range(1000)]  # alive when the test starts: frozen
after = gc_tuning.tune()
later = [[i] for i in range(1000)]  # a second test in the same process: not frozen
print(json.dumps({"before": before, "after": after, "again": gc_tuning.tune()}))
"""


def _tune(value: str | None) -> tuple[dict[str, Any], str]:
    env = {k: v for k, v in os.environ.items() if k != GC_ENV}
    if value is not None:
        env[GC_ENV] = value
    proc = subprocess.run(
        [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), proc.stderr


def test_tuned_by_default_freezes_the_start_up_heap_and_raises_the_young_threshold() -> None:
    out, stderr = _tune(None)
    after = out["after"]
    assert after["gc"] == "tuned"
    assert after["gc_threshold"] == [GEN0_THRESHOLD, *out["before"][1:]]
    assert after["gc_frozen"] >= 1000, "the objects alive at the start are frozen"
    assert out["again"] == after, "once per process"
    assert stderr == ""


def test_default_keeps_cpythons_settings() -> None:
    out, stderr = _tune("default")
    assert out["after"] == {"gc": "default", "gc_threshold": out["before"], "gc_frozen": 0}
    assert stderr == ""


def test_an_unknown_value_is_named_with_the_allowed_ones_and_tuning_goes_on() -> None:
    out, stderr = _tune("off")
    assert out["after"]["gc"] == "tuned"
    assert f"{GC_ENV}='off' is not one of tuned, default" in stderr
