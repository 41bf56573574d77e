#!/usr/bin/env python3
"""Memory of one authload Locust process over a long run: does it stay flat?

Runs ``authload run SCENARIO --duration 60*MINUTES`` (default ``scenarios/soak.yaml``, 20
minutes) with one Locust process pinned to the load CPU (default 1) and the embedded mock
moved to the mock CPU (default 0), samples the Locust process's resident set size (RSS,
/proc/PID/status VmRSS) every 10 s from its start, and compares it with its value at minute 2
(after the ramp-up, with every user running): PASS when no sample from minute 2 to the end of
the load is more than 10% above it. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mock_throughput import BenchError, Proc, Processes, start_bench

ROOT = Path(__file__).resolve().parent.parent
REFERENCE_S = 120.0  # minute 2: the reference sample
GOAL = 1.10  # every sample from minute 2 on at most 10% above the reference
FIND_TIMEOUT_S = 60.0  # the mock and Locust must show up within this
AFTER_LOAD_S = 600.0  # authload run's grace after the load (stop, merge, summary, report)
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Sample:
    t: float  # seconds since the Locust process was found
    locust_kb: int
    mock_kb: int | None
    locust_cpu_s: float


@dataclass
class Soak:
    samples: list[Sample] = field(default_factory=list)
    locust_pid: int = 0
    mock_pid: int = 0
    locust_cpus: set[int] = field(default_factory=set)
    mock_cpus: set[int] = field(default_factory=set)
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
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def _pin(pid: int, cpu: int) -> None:
    """Move every thread of a process to one CPU (threads made later inherit it)."""
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            os.sched_setaffinity(int(task.name), {cpu})
        except OSError:
            continue


def _affinity(pid: int) -> set[int]:
    cpus: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            cpus |= os.sched_getaffinity(int(task.name))
        except OSError:
            continue
    return cpus


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the run ------------------------------------------------------------------------------


def run_soak(args: argparse.Namespace, procs: Processes, tmp: Path, taskset: str) -> Soak:
    duration = 60.0 * args.minutes
    cmd = [
        taskset, "-c", str(args.load_cpu),
        sys.executable, "-m", "authload", "run", str(args.scenario),
        "--duration", f"{duration:g}",
        "--out", str(tmp / "runs"),
    ]  # fmt: skip
    env = {
        "AUTHLOAD_METRICS_PORT": str(_free_port()),
        "AUTHLOAD_METRICS_LINGER_S": "0",  # nothing scrapes it: no final-scrape grace
        "PYTHONUNBUFFERED": "1",
    }
    run = procs.start("authload-run", cmd, env=env)
    soak = Soak()
    locust, mock = _find(run, args.mock_cpu)
    soak.locust_pid, soak.mock_pid = locust, mock
    t0 = time.monotonic()
    cpu0 = _cpu_s(locust)
    print(
        f"Locust pid {locust} on cpu {args.load_cpu}, mock pid {mock} on cpu {args.mock_cpu};"
        f" sampling RSS every {args.every:g} s for {duration:g} s",
        file=sys.stderr,
        flush=True,
    )
    n = 0
    while True:
        rss = _rss_kb(locust)
        if rss is None:  # Locust has exited
            break
        t = time.monotonic() - t0
        if t > duration + 1.0:
            break  # the load is over: Locust is stopping its users
        if n == 0:
            soak.locust_cpus, soak.mock_cpus = _affinity(locust), _affinity(mock)
        soak.samples.append(Sample(round(t, 1), rss, _rss_kb(mock), _cpu_s(locust) - cpu0))
        if n % max(1, round(60 / args.every)) == 0:
            print(f"[{t:6.0f} s] Locust RSS {rss / 1024:7.1f} MB", file=sys.stderr, flush=True)
        n += 1
        time.sleep(max(0.0, t0 + n * args.every - time.monotonic()))
    try:
        run.popen.wait(timeout=duration + AFTER_LOAD_S - (time.monotonic() - t0))
    except subprocess.TimeoutExpired:
        raise BenchError(f"authload run did not finish in time:\n{run.log_tail()}") from None
    soak.run_rc = run.popen.returncode
    soak.run_output = run.log_tail(200_000)
    procs.stop(run)
    return soak


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
                _pin(pid, mock_cpu)
            elif not locust and cmd[1:3] == ["-m", "locust"]:
                locust = pid
        if mock:
            _pin(mock, mock_cpu)  # again: threads it started since
        if locust and mock:
            return locust, mock
        time.sleep(0.05)
    raise BenchError(f"no Locust process within {FIND_TIMEOUT_S:g} s:\n{run.log_tail()}")


# --- report -------------------------------------------------------------------------------


def _at(samples: list[Sample], t: float) -> Sample:
    return min(samples, key=lambda s: abs(s.t - t))


def figures(soak: Soak, duration: float) -> dict[str, Any]:
    load = [s for s in soak.samples if s.t <= duration + 1.0]
    if not load or load[-1].t < REFERENCE_S:
        raise BenchError("the Locust process ended before minute 2: see the run's output")
    ref = _at(load, REFERENCE_S)
    after = [s for s in load if s.t >= ref.t]
    peak = max(after, key=lambda s: s.locust_kb)
    final = load[-1]
    max_ratio = peak.locust_kb / ref.locust_kb
    return {
        "minute2_mb": ref.locust_kb / 1024,
        "final_mb": final.locust_kb / 1024,
        "final_t_s": final.t,
        "max_mb": peak.locust_kb / 1024,
        "max_t_s": peak.t,
        "final_ratio": final.locust_kb / ref.locust_kb,
        "max_ratio": max_ratio,
        "min_after_mb": min(s.locust_kb for s in after) / 1024,
        "verdict": "PASS" if max_ratio <= GOAL else "FAIL",
        "locust_cpu_pct": 100.0 * final.locust_cpu_s / final.t if final.t else 0.0,
        "mock_minute2_mb": (ref.mock_kb or 0) / 1024,
        "mock_final_mb": (final.mock_kb or 0) / 1024,
    }


def print_report(args: argparse.Namespace, soak: Soak, f: dict[str, Any]) -> None:
    duration = 60.0 * args.minutes
    print()
    print(
        f"soak_memory: authload run {args.scenario} --duration {duration:g}; 1 Locust process"
        f" on cpu {','.join(map(str, sorted(soak.locust_cpus)))}, mock on cpu"
        f" {','.join(map(str, sorted(soak.mock_cpus)))}; RSS (VmRSS) every {args.every:g} s"
    )
    print()
    print(f"{'minute':>6}{'Locust RSS MB':>15}{'mock RSS MB':>13}")
    for minute in range(int(duration // 60) + 1):
        s = _at(soak.samples, 60.0 * minute)
        mock = f"{s.mock_kb / 1024:13.1f}" if s.mock_kb is not None else f"{'-':>13}"
        mark = "  <- reference" if minute == 2 else ""
        print(f"{minute:>6}{s.locust_kb / 1024:>15.1f}{mock}{mark}")
    print()
    print(f"Locust RSS at minute 2     {f['minute2_mb']:8.1f} MB")
    print(f"Locust RSS final           {f['final_mb']:8.1f} MB  (at {f['final_t_s']:.0f} s)")
    print(f"Locust RSS max from min 2  {f['max_mb']:8.1f} MB  (at {f['max_t_s']:.0f} s)")
    print(f"Locust RSS min from min 2  {f['min_after_mb']:8.1f} MB")
    print(f"ratio final / minute 2     {f['final_ratio']:8.3f}")
    print(f"ratio max / minute 2       {f['max_ratio']:8.3f}  goal <= {GOAL:.2f}  {f['verdict']}")
    print(
        f"(Locust cpu {f['locust_cpu_pct']:.0f}% of its core on average; mock RSS"
        f" {f['mock_minute2_mb']:.1f} MB at minute 2, {f['mock_final_mb']:.1f} MB at the end)"
    )
    lines = soak.run_output.splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.startswith("run directory:")), None)
    print()
    print(f"authload run exit status {soak.run_rc}; its summary:")
    for line in lines[start + 1 :] if start is not None else lines[-20:]:
        print(f"  {line}")


# --- main ---------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--minutes", type=float, default=20.0, help="length of the run (20)")
    p.add_argument(
        "--scenario", type=Path, default=ROOT / "scenarios" / "soak.yaml", help="soak.yaml"
    )
    p.add_argument("--every", type=float, default=10.0, help="seconds between samples (10)")
    p.add_argument("--load-cpu", type=int, default=1, help="CPU of the Locust process (1)")
    p.add_argument("--mock-cpu", type=int, default=0, help="CPU of the mock (0)")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the samples as JSON")
    p.add_argument("--keep-temp", action="store_true", help="keep the run directory and logs")
    args = p.parse_args(argv)
    if args.minutes * 60 <= REFERENCE_S + args.every:
        p.error("--minutes must be more than 2 (minute 2 is the reference)")
    if not 0 < args.every <= 60:
        p.error("--every must be in (0, 60]")
    usable = os.sched_getaffinity(0)
    if not {args.load_cpu, args.mock_cpu} <= usable:
        p.error(f"CPUs {args.load_cpu}, {args.mock_cpu} must be among {sorted(usable)}")
    args.scenario = args.scenario.resolve()
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = start_bench("soak_memory")
    if started is None:
        return 2
    taskset, tmp = started
    procs = Processes(tmp / "logs")
    try:
        soak = run_soak(args, procs, tmp, taskset)
        f = figures(soak, 60.0 * args.minutes)
        print_report(args, soak, f)
        if args.json:
            doc = {
                "minutes": args.minutes,
                "scenario": str(args.scenario),
                "figures": f,
                "samples": [vars(s) for s in soak.samples],
            }
            args.json.write_text(json.dumps(doc, indent=2) + "\n")
    except BenchError as exc:
        print(f"soak_memory: error: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print("soak_memory: interrupted", file=sys.stderr)
        return 130
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        procs.stop_all()
        if args.keep_temp:
            print(f"soak_memory: kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
