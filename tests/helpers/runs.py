"""Helpers of the `authload run` tests: run the real command, read what it left behind."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = REPO / "scenarios"
STARTUP_S = 60.0  # mock start, Locust start, finalizing: generous on a loaded CI machine

# A refresh storm of STORM_SESSIONS sessions while a share of refresh answers is lost after
# the rotation: test_run's storm, and test_verdict's family revocation.
STORM = """
name: storm-lost-answers
seed: 9
accounts: {count: 3000}
mix: {sms: 1, lkfl: 1}
load:
  model: closed
  stages: [{duration_s: 7, users: 6, spawn_rate: 6}]
think_time: {dist: fixed, ms: 50}
flows:
  sms: {typo_share: 0, refreshes: [0, 0]}
  lkfl: {wrong_password_share: 0}
events:
  - {kind: refresh_storm, at_s: 4, sessions: STORM_SESSIONS, window_s: 1}
retry: {policy: retry_after, max_attempts: 2, base_ms: 20, cap_ms: 100}
abort: null
mock:
  behaviour:
    faults:
      - {name: lost-answers, kind: reset, endpoints: [mobile.refresh], fraction: 0.3}
"""


def authload(
    *args: str | Path, env: dict[str, str] | None = None, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """``python -m authload ARGS`` in a child process, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "authload", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        check=False,
    )


@dataclass
class Run:
    """One finished `authload run` and its run directory (None if it never made one)."""

    proc: subprocess.CompletedProcess[str]
    run_dir: Path | None
    out: Path
    _cache: dict[str, Any] = field(default_factory=dict)

    @property
    def code(self) -> int:
        return self.proc.returncode

    @property
    def output(self) -> str:
        return self.proc.stdout + self.proc.stderr

    def describe(self) -> str:
        """What to show when an assertion on this run fails."""
        return f"exit {self.code}\n--- stdout\n{self.proc.stdout}\n--- stderr\n{self.proc.stderr}"

    def json(self, name: str) -> Any:
        assert self.run_dir is not None, self.describe()
        if name not in self._cache:
            self._cache[name] = json.loads((self.run_dir / name).read_text(encoding="utf-8"))
        return self._cache[name]

    @property
    def manifest(self) -> dict[str, Any]:
        return dict(self.json("manifest.json"))

    @property
    def summary(self) -> dict[str, Any]:
        return dict(self.json("summary.json"))

    @property
    def mock_stats(self) -> dict[str, Any]:
        return dict(self.json("mock_stats.json"))

    @property
    def outcomes(self) -> Counter[str]:
        return Counter(self.summary["outcomes"])

    @cached_property
    def events(self) -> list[dict[str, Any]]:
        assert self.run_dir is not None, self.describe()
        text = (self.run_dir / "events.jsonl").read_text(encoding="utf-8")
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    @cached_property
    def records(self) -> pd.DataFrame:
        assert self.run_dir is not None, self.describe()
        return pd.read_parquet(self.run_dir / "requests.parquet", engine="pyarrow")

    def locust_counts(self) -> dict[str, int]:
        """Locust's request count per endpoint: ``locust_counts.json``, or the per-process
        files of ``locust_counts/`` summed."""
        assert self.run_dir is not None, self.describe()
        single = self.run_dir / "locust_counts.json"
        paths = [single] if single.is_file() else sorted(self.run_dir.glob("locust_counts/*.json"))
        assert paths, f"no Locust counts in {self.run_dir}"
        total: Counter[str] = Counter()
        for path in paths:
            total.update(json.loads(path.read_text(encoding="utf-8")))
        return dict(total)

    def mock_counts(self) -> dict[str, int]:
        """The mock's answered requests per endpoint (``mock_stats.json``)."""
        return {name: sum(s.values()) for name, s in self.mock_stats["requests"].items()}


def run_scenario(
    directory: Path,
    scenario: str,
    *args: str | Path,
    env: dict[str, str] | None = None,
    load_s: float = 15.0,
) -> Run:
    """Write ``scenario`` (YAML text) to ``directory`` and `authload run` it there."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "scenario.yaml"
    path.write_text(scenario, encoding="utf-8")
    out = directory / "runs"
    proc = authload("run", path, "--out", out, *args, env=env, timeout=load_s + STARTUP_S)
    match = re.search(r"^run directory: (.+)$", proc.stdout, re.MULTILINE)
    run_dir = Path(match[1].strip()) if match else None
    return Run(proc, run_dir, out)


def journeys(records: pd.DataFrame) -> dict[str, list[tuple[str, int]]]:
    """Each journey's calls in order, as (endpoint, status), by flow_id. Calls of one journey
    are sequential, so operation ids (counted per process) give their order."""
    ordered = records.sort_values(["flow_id", "op_id", "attempt"], kind="stable")
    result: dict[str, list[tuple[str, int]]] = {}
    for flow_id, group in ordered.groupby("flow_id", sort=False):
        result[str(flow_id)] = list(
            zip(group["endpoint"], group["status"].astype(int), strict=True)
        )
    return result


def flow_of(records: pd.DataFrame) -> dict[str, str]:
    """The flow of each flow_id (one flow per journey)."""
    flows = records.groupby("flow_id")["flow"].unique()
    assert all(len(f) == 1 for f in flows), "a journey with records of several flows"
    return {str(k): str(v[0]) for k, v in flows.items()}
