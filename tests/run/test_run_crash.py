"""A Locust worker killed mid-run: Locust's master gives its users to the other worker, the
run finishes, what the dead one flushed is kept, the manifest says which worker died and
when, and the verdict is INVALID, never PASS."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers.runs import REPO

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SCENARIO = """
name: crash
accounts: {count: 500}
mix: {lkfl: 1, esia: 1}
load:
  stages:
    - {duration_s: 20, users: 8, spawn_rate: 8}
think_time: {dist: fixed, ms: 50}
abort: null
mock: {behaviour: {}}
"""


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_text().replace("\0", " ")
    except OSError:
        return ""


def _locust_workers(run_pid: int) -> list[int]:
    masters = [p for p in _children(run_pid) if "locust" in _cmdline(p)]
    return [w for m in masters for w in _children(m)]


def test_a_killed_worker_leaves_its_records_and_is_named_in_the_manifest(tmp_path: Path) -> None:
    path = tmp_path / "crash.yaml"
    path.write_text(SCENARIO, encoding="utf-8")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "authload",
            "run",
            str(path),
            "--out",
            str(tmp_path / "runs"),
            "--processes",
            "2",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 30
        while len(workers := _locust_workers(proc.pid)) < 2:
            assert time.monotonic() < deadline, "the Locust workers did not start"
            time.sleep(0.2)
        time.sleep(6)  # the worker has flushed records (every 2 s) by now
        victim = max(workers)
        os.kill(victim, signal.SIGKILL)
        killed_at = time.time()
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    run_dir = next((tmp_path / "runs").iterdir())
    import json

    manifest = json.loads((run_dir / "manifest.json").read_text())
    records = pd.read_parquet(run_dir / "requests.parquet")
    assert len(manifest["died"]) == 1, (out, err)
    died = manifest["died"][0]
    dead = records[records["worker"] == died["worker"]]
    alive = records[records["worker"] != died["worker"]]
    assert len(dead) > 0, "the dead worker's flushed records are kept"
    assert killed_at - 3 <= died["last_record_t"] <= killed_at
    assert alive["t"].max() > killed_at + 3, "the other worker went on to the end"
    assert proc.returncode == 3, (out, err)
    assert "verdict: INVALID" in out
    summary = json.loads((run_dir / "summary.json").read_text())
    gates = {g["gate"]: g for g in summary["gates"]}
    assert not gates["processes"]["passed"]
    assert died["worker"] in gates["processes"]["evidence"]
    assert died["missing_at"] is not None  # Locust's master found it missing, and when
    # the load was carried on: the master gave the dead worker's users to the other one
    offered = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    users = [e["users"] for e in offered if e["kind"] == "offered"]
    assert users[-1] == 8, users
    assert gates["load_offered"]["passed"], gates["load_offered"]
