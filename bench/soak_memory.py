#!/usr/bin/env python3
"""Memory of both sides of an authload run over a long soak: do they stay flat?

Runs ``authload run SCENARIO --duration 60*MINUTES`` (default ``scenarios/release-gate.yaml``,
60 minutes) with one Locust process pinned to the load CPU (default 1) and the embedded mock
moved to the mock CPU (default 0), samples both processes' resident set size (RSS,
/proc/PID/status VmRSS) every 10 s, and fits each side's growth rate (MB/h, least squares)
over the second half of the run (never before the end of the warm-up, default minute 10).
Goals (issue 21): the Locust process grows by at most 1 MB/h and stays within 5% of its size
at the end of the warm-up; the mock has reached its bound and stays flat (at most 1 MB/h).
``--diagnose`` also traces Python allocations in both processes and prints the sites that
grew most between the end of the warm-up and the end of the load. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import harness
import httpx
import soak_diagnose
from harness import BenchError, Proc, Processes
from soak_figures import Sample, at, figures, report_lines

ROOT = Path(__file__).resolve().parent.parent
FIND_TIMEOUT_S = 60.0  # the mock and Locust must show up within this
AFTER_LOAD_S = 600.0  # authload run's grace after the load (stop, merge, summary, report)
TICKS = os.sysconf("SC_CLK_TCK")
MOCK_URL = re.compile(r"embedded mock on (http://127\.0\.0\.1:\d+)")


@dataclass
class Soak:
    samples: list[Sample] = field(default_factory=list)
    locust_pid: int = 0
    mock_pid: int = 0
    locust_cpus: set[int] = field(default_factory=set)
    mock_cpus: set[int] = field(default_factory=set)
    mock_held: dict[str, Any] = field(default_factory=dict)  # /_mock/stats "held", at the end
    snapshots: list[tuple[float, dict[str, Path]]] = field(default_factory=list)
    run_output: str = ""
    run_rc: int | None = None


# --- /proc --------------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        kids = _children(todo.pop())
        found += kids
        todo += kids
    return found


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _cpu_s(pid: int) -> float:
    return harness.process_cpu_ticks(pid) / TICKS


# --- the run ------------------------------------------------------------------------------


def run_soak(args: argparse.Namespace, procs: Processes, tmp: Path, taskset: str) -> Soak:
    duration = 60.0 * args.minutes
    run_cmd = [
        sys.executable, "-m", "authload", "run", str(args.scenario),
        "--duration", f"{duration:g}",
        "--out", str(tmp / "runs"),
    ]  # fmt: skip
    cmd = harness.pinned(taskset, args.load_cpu, run_cmd)
    env = {
        "AUTHLOAD_METRICS_PORT": str(harness.free_port()),
        "AUTHLOAD_METRICS_LINGER_S": "0",  # nothing scrapes it: no final-scrape grace
        "PYTHONUNBUFFERED": "1",
    }
    if args.diagnose:
        env |= soak_diagnose.environment(tmp / "tracemalloc")
    run = procs.start("authload-run", cmd, env=env)
    soak = Soak()
    locust, mock = _find(run, args.mock_cpu)
    soak.locust_pid, soak.mock_pid = locust, mock
    print(
        f"Locust pid {locust} on cpu {args.load_cpu}, mock pid {mock} on cpu {args.mock_cpu};"
        f" sampling RSS every {args.every:g} s for {duration:g} s",
        file=sys.stderr,
        flush=True,
    )
    _sample(args, soak, tmp)
    soak.mock_held = _mock_held(run)
    try:
        run.popen.wait(timeout=duration + AFTER_LOAD_S)
    except subprocess.TimeoutExpired:
        raise BenchError(f"authload run did not finish in time:\n{run.log_tail()}") from None
    soak.run_rc = run.popen.returncode
    soak.run_output = run.log_tail(200_000)
    procs.stop(run)
    return soak


def _sample(args: argparse.Namespace, soak: Soak, tmp: Path) -> None:
    """RSS of both every ``--every`` s until the load ends; the snapshots of --diagnose."""
    duration = 60.0 * args.minutes
    due = [60.0 * args.warmup, duration - max(args.every, 15.0)] if args.diagnose else []
    t0 = time.monotonic()
    cpu0 = _cpu_s(soak.locust_pid)
    n = 0
    while True:
        rss = _rss_kb(soak.locust_pid)
        t = time.monotonic() - t0
        if rss is None or t > duration + 1.0:
            break  # Locust has exited, or the load is over: Locust is stopping its users
        if n == 0:
            soak.locust_cpus = harness.affinity(soak.locust_pid)
            soak.mock_cpus = harness.affinity(soak.mock_pid)
        mock = _rss_kb(soak.mock_pid)
        soak.samples.append(Sample(round(t, 1), rss, mock, _cpu_s(soak.locust_pid) - cpu0))
        if n % max(1, round(60 / args.every)) == 0:
            mock_mb = (mock or 0) / 1024
            print(
                f"[{t:6.0f} s] Locust RSS {rss / 1024:7.1f} MB, mock RSS {mock_mb:7.1f} MB",
                file=sys.stderr,
                flush=True,
            )
            if args.json:  # a run stopped before its end keeps its samples up to here
                write_document(args.json, document(args, soak, None))
        if due and t >= due[0]:
            due.pop(0)
            pids = {"locust": soak.locust_pid, "mock": soak.mock_pid}
            soak.snapshots.append((t, soak_diagnose.snapshot(pids, tmp / "tracemalloc")))
        n += 1
        time.sleep(max(0.0, t0 + n * args.every - time.monotonic()))


def _mock_held(run: Proc) -> dict[str, Any]:
    """What the mock's store holds now (``/_mock/held``), while the run is still going."""
    found = MOCK_URL.search(run.log_tail(200_000))
    if found is None:
        return {}
    try:
        held: dict[str, Any] = httpx.get(f"{found.group(1)}/_mock/held", timeout=10.0).json()
    except (httpx.HTTPError, ValueError):
        return {}
    return held


def _find(run: Proc, mock_cpu: int) -> tuple[int, int]:
    """The Locust process and the mock among the run's descendants; pins the mock."""
    deadline = time.monotonic() + FIND_TIMEOUT_S
    locust = mock = 0
    while time.monotonic() < deadline:
        if run.popen.poll() is not None:
            raise BenchError(f"authload run exited with {run.popen.returncode}:\n{run.log_tail()}")
        for pid in _descendants(run.popen.pid):
            cmd = _cmdline(pid)
            if not mock and cmd[1:4] == ["-m", "authload", "mock"]:
                mock = pid
                harness.pin(pid, mock_cpu)
            elif not locust and cmd[1:3] == ["-m", "locust"]:
                locust = pid
        if mock:
            harness.pin(mock, mock_cpu)  # again: threads it started since
        if locust and mock:
            return locust, mock
        time.sleep(0.05)
    raise BenchError(f"no Locust process within {FIND_TIMEOUT_S:g} s:\n{run.log_tail()}")


# --- report -------------------------------------------------------------------------------


def print_report(args: argparse.Namespace, soak: Soak, f: dict[str, Any]) -> None:
    duration = 60.0 * args.minutes
    print()
    print(
        f"soak_memory: authload run {_shown(args.scenario)} --duration {duration:g}; 1 Locust"
        f" process on cpu {','.join(map(str, sorted(soak.locust_cpus)))}, mock on cpu"
        f" {','.join(map(str, sorted(soak.mock_cpus)))}; RSS (VmRSS) every {args.every:g} s"
    )
    if args.diagnose:
        print("(--diagnose: both processes traced their allocations; RSS includes the tracing)")
    print()
    print(f"{'minute':>6}{'Locust RSS MB':>15}{'mock RSS MB':>13}")
    for minute in _table_minutes(args):
        s = at(soak.samples, 60.0 * minute)
        mock = f"{s.mock_kb / 1024:13.1f}" if s.mock_kb is not None else f"{'-':>13}"
        mark = "  <- end of the warm-up" if minute == args.warmup else ""
        print(f"{minute:>6g}{s.locust_kb / 1024:>15.1f}{mock}{mark}")
    print()
    for line in report_lines(f):
        print(line)
    if soak.mock_held:
        print(f"mock holds at the end: {_held_text(soak.mock_held)}")
    if args.diagnose:
        _print_diagnosis(args, soak)
    lines = soak.run_output.splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.startswith("run directory:")), None)
    print()
    print(f"authload run exit status {soak.run_rc}; its summary:")
    for line in lines[start + 1 :] if start is not None else lines[-20:]:
        print(f"  {line}")


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def _table_minutes(args: argparse.Namespace) -> list[float]:
    """Every minute of a short run; about 30 rows of a long one, the warm-up's end among them."""
    step = max(1, round(args.minutes / 30))
    minutes = set(range(0, int(args.minutes) + 1, step)) | {args.warmup, int(args.minutes)}
    return sorted(minutes)


def _held_text(held: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(held.items()))


def _print_diagnosis(args: argparse.Namespace, soak: Soak) -> None:
    if len(soak.snapshots) < 2:
        print("\n--diagnose: fewer than two snapshots (the load ended early)")
        return
    (t1, first), (t2, second) = soak.snapshots[0], soak.snapshots[-1]
    for role in ("locust", "mock"):
        total, sites = soak_diagnose.growth(first[role], second[role], args.top)
        minutes = (round(t1 / 60, 1), round(t2 / 60, 1))
        print()
        for line in soak_diagnose.report(role, minutes, total, sites):
            print(line)


# --- the samples as JSON ------------------------------------------------------------------


def document(args: argparse.Namespace, soak: Soak, f: dict[str, Any] | None) -> dict[str, Any]:
    """What ``--json`` writes; ``complete`` false (and no figures) while the load goes on."""
    return {
        "minutes": args.minutes,
        "warmup_minutes": args.warmup,
        "scenario": str(args.scenario),
        "complete": f is not None,
        "figures": f,
        "mock_held": soak.mock_held,
        "samples": [vars(s) for s in soak.samples],
    }


def write_document(path: Path, doc: dict[str, Any]) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(partial, path)


def report_saved(path: Path) -> int:
    """``--report``: the figures of a saved ``--json`` file, also of a run stopped before
    its end (fitted up to its last sample)."""
    try:
        doc = json.loads(path.read_text())
        samples = [Sample(**s) for s in doc["samples"]]
        warmup_s = 60.0 * float(doc.get("warmup_minutes", 10.0))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"soak_memory: error: {path}: not a saved soak: {exc}", file=sys.stderr)
        return 2
    if not samples or samples[-1].t < 2 * warmup_s:
        print(f"soak_memory: error: {path}: too short to fit (the fit needs a second half)")
        return 3
    end = samples[-1].t
    state = "complete" if doc.get("complete") else f"stopped before its end, at {end / 60:.0f} min"
    print(f"soak_memory: {path.name}: {doc['scenario']}, {doc['minutes']:g} min planned, {state}")
    print()
    for line in report_lines(figures(samples, end, warmup_s)):
        print(line)
    return 0


# --- main ---------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--minutes", type=float, default=60.0, help="length of the run (60)")
    p.add_argument(
        "--scenario",
        type=Path,
        default=ROOT / "scenarios" / "release-gate.yaml",
        help="scenarios/release-gate.yaml",
    )
    p.add_argument("--warmup", type=float, default=10.0, help="warm-up, minutes (10)")
    p.add_argument("--every", type=float, default=10.0, help="seconds between samples (10)")
    p.add_argument("--diagnose", action="store_true", help="trace allocations, print growth")
    p.add_argument("--top", type=int, default=12, help="--diagnose: sites shown per side (12)")
    p.add_argument("--load-cpu", type=int, default=1, help="CPU of the Locust process (1)")
    p.add_argument("--mock-cpu", type=int, default=0, help="CPU of the mock (0)")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the samples as JSON")
    p.add_argument("--keep-temp", action="store_true", help="keep the run directory and logs")
    p.add_argument(
        "--report", type=Path, metavar="FILE", help="print the figures of a saved --json file"
    )
    args = p.parse_args(argv)
    if args.report:
        return args
    if args.warmup <= 0 or args.minutes < 2 * args.warmup:
        p.error("--minutes must be at least twice --warmup (the fit needs a second half)")
    if not 0 < args.every <= 60:
        p.error("--every must be in (0, 60]")
    usable = os.sched_getaffinity(0)
    if not {args.load_cpu, args.mock_cpu} <= usable:
        p.error(f"CPUs {args.load_cpu}, {args.mock_cpu} must be among {sorted(usable)}")
    args.scenario = args.scenario.resolve()
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report:
        return report_saved(args.report)
    started = harness.start_bench("soak_memory")
    if started is None:
        return 2
    taskset, tmp = started
    procs = Processes(tmp / "logs")
    try:
        soak = run_soak(args, procs, tmp, taskset)
        duration = 60.0 * args.minutes
        if not soak.samples or soak.samples[-1].t < 60.0 * args.warmup:
            raise BenchError("the Locust process ended before the warm-up did: see its output")
        f = figures(soak.samples, duration, 60.0 * args.warmup)
        print_report(args, soak, f)
        if args.json:
            write_document(args.json, document(args, soak, f))
    except BenchError as exc:
        print(f"soak_memory: error: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print("soak_memory: interrupted", file=sys.stderr)
        return 130
    finally:
        harness.ignore_interrupts()
        procs.stop_all()
        if args.keep_temp:
            print(f"soak_memory: kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
