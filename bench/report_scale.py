#!/usr/bin/env python3
"""Analysis at scale: how long the summary, the report and a compare take, and how much
memory, on runs of 1, 10 and 100 million requests.

For each size of ``--rows`` it makes a synthetic run directory (bench/synthetic_run.py:
release-gate traffic at 2,500 requests/s, a 503 burst, a fault window of timeouts), cached
by (rows, seed) under ``--dir``, then runs each step in a fresh child process and measures
its wall time and peak RSS (the child's ``ru_maxrss``, from ``wait4``):

- summary: ``authload.analysis.summary.summarize`` with release-gate.yaml, writing
  summary.json, as ``authload run`` does after the load;
- report: ``authload report RUN_DIR``;
- compare: ``authload compare RUN_DIR RUN_DIR``;
- pandas: the peer, ``pd.read_parquet`` of the whole file and a groupby quantile.

Goals (issue 15): at 10M summary + report in under 10 s and under 1 GiB; at 100M under 10
times the 10M time and under 2 GiB; report.html under 5 MB. ``--engines`` runs the engine
comparison instead: the same exact percentiles with DuckDB, Polars, pyarrow and pandas,
checked against numpy. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import harness
import synthetic_run
from harness import BenchError
from report_engines import QUANTILES
from synthetic_run import MARKER, Spec, parse_rows, rows_label

from authload.rundir.files import RECORDS_FILE, REPORT_FILE, SUMMARY_FILE

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
STEPS = ("summary", "report", "compare", "pandas")
STEP_NAMES = {
    "summary": "summary",
    "report": "report",
    "compare": "self-compare",
    "pandas": "naive pandas",
}
ENGINE_ORDER = ("buckets", "duckdb", "duckdb-counts", "polars", "pyarrow", "pandas")
GiB = 1024.0
TEN_M, HUNDRED_M = 10_000_000, 100_000_000
GOAL_10M_S, GOAL_10M_MB, GOAL_100M_MB, GOAL_REPORT_MB = 10.0, 1 * GiB, 2 * GiB, 5.0
TICKS = os.sysconf("SC_CLK_TCK")
POLL_S = 0.2
DISTURBED_PCT = 10.0  # other work on the machine during a step, % of one core


# --- one child, measured --------------------------------------------------------------------


@dataclass
class Measure:
    """One child process: ``status`` is ok, failed (exit code), timeout or killed (memory)."""

    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    exit: int | None
    status: str
    other_pct: float  # CPU time of everything else on the machine, % of one core
    note: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class Limits:
    timeout_s: float
    max_rss_mb: float
    min_available_mb: float


def _busy_s() -> float:
    """CPU seconds the whole machine has spent busy since boot (every CPU)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    values = [int(v) for v in fields[:8]]
    idle = values[3] + values[4]
    return (sum(values) - idle) / TICKS


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def _available_mb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024.0
    return float("inf")


def run_child(cmd: list[str], log: Path, limits: Limits) -> Measure:
    """Run ``cmd`` in a process group of its own and wait for it: killed when it outlives
    ``timeout_s``, passes ``max_rss_mb`` or leaves the machine under ``min_available_mb``."""
    busy0, started = _busy_s(), time.monotonic()
    with log.open("w") as out:
        proc = harness.start_in_group(cmd, out, env={"PYTHONUNBUFFERED": "1"}, cwd=ROOT)
    reason = ""
    try:
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            reason = reason or _why_kill(proc.pid, time.monotonic() - started, limits)
            if reason:
                harness.kill_group(proc.pid)
            time.sleep(POLL_S)
    except BaseException:
        harness.kill_group(proc.pid)
        with contextlib.suppress(ChildProcessError):
            os.wait4(proc.pid, 0)
        proc.returncode = -9
        raise
    wall = time.monotonic() - started
    code = os.waitstatus_to_exitcode(status)
    proc.returncode = code
    cpu = usage.ru_utime + usage.ru_stime
    other = max(0.0, (_busy_s() - busy0 - cpu) / wall * 100.0) if wall > 0 else 0.0
    peak = usage.ru_maxrss / 1024.0
    if reason:
        state, note = reason.split(": ", 1)
        return Measure(wall, cpu, peak, None, state, other, note)
    state = "ok" if code == 0 else "failed"
    return Measure(wall, cpu, peak, code, state, other, "" if code == 0 else _tail(log))


def _why_kill(pid: int, elapsed: float, limits: Limits) -> str:
    """Why to kill the child now ("timeout: ..." or "killed: ..."), else ""."""
    if elapsed > limits.timeout_s:
        return f"timeout: after {limits.timeout_s:g} s"
    rss = _rss_mb(pid)
    if rss > limits.max_rss_mb:
        return f"killed: at {rss:.0f} MB RSS (--max-rss-mb {limits.max_rss_mb:g})"
    available = _available_mb()
    if available < limits.min_available_mb:
        return f"killed: the machine had {available:.0f} MB available, the child {rss:.0f} MB"
    return ""


def _tail(log: Path, lines: int = 3) -> str:
    """The error a failed child printed last, else its last lines."""
    try:
        text = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    errors = [ln for ln in text if "Error" in ln or "Exception" in ln or "error:" in ln]
    return errors[-1] if errors else " | ".join(text[-lines:])


# --- run directories --------------------------------------------------------------------


@dataclass
class Size:
    rows: int
    run_dir: Path
    made: dict[str, Any] = field(default_factory=dict)
    generate: Measure | None = None  # None: reused from the cache
    steps: dict[str, Measure] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return rows_label(self.rows)


def prepare(args: argparse.Namespace, rows: int, logs: Path) -> Size:
    """The run directory of ``rows`` under ``--dir``: reused when made with the same
    settings, else generated in a child process (measured)."""
    spec = Spec(rows, args.seed, args.rate)
    run_dir = args.dir / f"run-{rows_label(rows)}-seed{args.seed}"
    size = Size(rows, run_dir)
    if synthetic_run.cached(run_dir, spec):
        _say(f"{size.label}: reusing {run_dir}")
    else:
        _say(f"{size.label}: generating {run_dir} ...")
        cmd = [sys.executable, str(BENCH / "synthetic_run.py"), str(run_dir)]
        cmd += ["--rows", str(rows), "--seed", str(args.seed), "--rate", repr(args.rate)]
        limits = Limits(args.timeout, args.max_rss_mb, args.min_available_mb)
        size.generate = run_child(cmd, logs / f"generate-{size.label}.log", limits)
        if not size.generate.ok:
            raise BenchError(f"generating {run_dir}: {size.generate.note}")
    size.made = json.loads((run_dir / MARKER).read_text(encoding="utf-8"))
    return size


# --- steps --------------------------------------------------------------------------------


def step_command(step: str, size: Size, out: Path) -> list[str]:
    python, run_dir = sys.executable, str(size.run_dir)
    engines = str(BENCH / "report_engines.py")
    return {
        "summary": [python, engines, "summary", run_dir, str(out)],
        "report": [python, "-m", "authload", "report", run_dir],
        "compare": [python, "-m", "authload", "compare", run_dir, run_dir],
        "pandas": [python, engines, "naive", str(size.run_dir / RECORDS_FILE), str(out)],
    }[step]


def run_steps(args: argparse.Namespace, size: Size, logs: Path) -> None:
    limits = Limits(args.timeout, args.max_rss_mb, args.min_available_mb)
    for name in (SUMMARY_FILE, REPORT_FILE):  # no figure of an earlier invocation survives
        (size.run_dir / name).unlink(missing_ok=True)
    if "report" in args.steps and "summary" not in args.steps:
        _say(f"{size.label}: summary (not measured: the report needs summary.json)")
        run_child(step_command("summary", size, logs / "summary.json"), logs / "pre.log", limits)
    for step in args.steps:
        summary = size.steps.get("summary")
        if step == "report" and summary is not None and not summary.ok:
            note = "the summary did not finish (no summary.json)"
            size.steps[step] = Measure(0.0, 0.0, 0.0, None, "skipped", 0.0, note)
            continue
        _say(f"{size.label}: {STEP_NAMES[step]} ...")
        out = logs / f"{step}-{size.label}.json"
        log = logs / f"{step}-{size.label}.log"
        measure = run_child(step_command(step, size, out), log, limits)
        _judge(step, size, measure, out, log)
        size.steps[step] = measure
        _say(f"{size.label}: {STEP_NAMES[step]}: {_result(step, measure)}")


def _judge(step: str, size: Size, measure: Measure, out: Path, log: Path) -> None:
    """What the step left: the verdict, the exit code's meaning, the report's size."""
    text = log.read_text(errors="replace") if log.is_file() else ""
    verdict = next(
        (ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("verdict:")),
        None,
    )
    if out.is_file():
        with contextlib.suppress(ValueError):
            measure.data.update(json.loads(out.read_text(encoding="utf-8")))
    if verdict is not None:
        measure.data["verdict"] = verdict
    if step == "report":
        report = size.run_dir / REPORT_FILE
        if report.is_file():
            measure.data["report_mb"] = report.stat().st_size / 1e6
        # 1 (fail) and 3 (invalid, aborted, error) are verdicts when the report was written
        if measure.exit in (1, 3) and verdict is not None and report.is_file():
            measure.status = "ok"
    if step == "compare" and measure.exit == 1 and verdict is not None:
        measure.status = "ok"  # a regression is an answer (of a run against itself: a bug)


def _result(step: str, m: Measure) -> str:
    if not m.ok:
        code = f"exit {m.exit}: " if m.exit is not None else ""
        return f"{m.status.upper()}: {code}{m.note}"[:160]
    parts = []
    if step in ("report", "compare"):
        parts.append(f"exit {m.exit}")
    if "verdict" in m.data:
        parts.append(f"verdict {str(m.data['verdict']).upper()}")
    if "report_mb" in m.data:
        parts.append(f"report.html {m.data['report_mb']:.2f} MB")
    return ", ".join(parts) or "ok"


# --- the report ---------------------------------------------------------------------------


def _say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def _versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("pandas", "pyarrow", "numpy", "duckdb", "polars"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def _revision() -> str:
    def git(*a: str) -> str:
        done = subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    revision = git("rev-parse", "--short", "HEAD") or "unknown"
    return revision + (" (with changes)" if git("status", "--porcelain", "src") else "")


def _header(args: argparse.Namespace, what: str) -> list[str]:
    versions = ", ".join(f"{k} {v}" for k, v in _versions().items() if v)
    return [
        f"report_scale{what}: synthetic release-gate runs at {args.rate:g} requests/s from 3 "
        f"processes, seed {args.seed}; every step in a fresh child process; peak RSS: the "
        f"child's ru_maxrss (wait4)",
        f"authload {_revision()}; {versions}; {os.cpu_count()} CPUs",
    ]


def _file_line(size: Size) -> str:
    made = size.made
    g = size.generate
    how = (
        "reused from the cache"
        if g is None
        else f"generated in {g.wall_s:.1f} s, peak RSS {g.peak_rss_mb:.0f} MB"
    )
    return (
        f"{size.label:>5}: requests.parquet {made['requests_bytes'] / 1e6:.1f} MB, "
        f"{made['row_groups']} row groups, {size.rows:,} requests, {made['journeys']:,} "
        f"journeys, {made['duration_s'] / 3600:.2f} h; {how}"
    )


def _ratio(value: float, peer: Measure | None, ok: bool, attr: str) -> str:
    if peer is None or not peer.ok or not ok:
        return "-"
    base = getattr(peer, attr)
    return f"{value / base:.2f}x" if base > 0 else "-"


def _combined(size: Size) -> Measure | None:
    """summary + report: the wall times added, the higher peak; the worse status."""
    s, r = size.steps.get("summary"), size.steps.get("report")
    if s is None or r is None:
        return None
    worst = ("killed", "timeout", "failed", "skipped")
    status = next((x for x in worst if x in (s.status, r.status)), "ok")
    wall = s.wall_s + r.wall_s
    other = (s.other_pct * s.wall_s + r.other_pct * r.wall_s) / max(wall, 1e-9)
    peak = max(s.peak_rss_mb, r.peak_rss_mb)
    note = "" if status == "ok" else f"{'summary' if not s.ok else 'report'}: {status}"
    return Measure(wall, s.cpu_s + r.cpu_s, peak, None, status, other, note)


def steps_table(sizes: list[Size]) -> list[str]:
    head = (
        f"{'rows':>6}  {'step':<15}{'wall s':>8}{'cpu s':>8}{'peak RSS MB':>13}{'other':>7}"
        f"{'wall/pandas':>13}{'RSS/pandas':>12}  result"
    )
    lines = [head]
    for size in sizes:
        peer = size.steps.get("pandas")
        rows: list[tuple[str, str, Measure]] = [
            (step, STEP_NAMES[step], m) for step, m in size.steps.items()
        ]
        both = _combined(size)
        if both is not None:
            rows.insert(2, ("both", "summary+report", both))
        for step, name, m in rows:
            judged = step in ("summary", "report", "both")
            wall = _ratio(m.wall_s, peer, m.ok, "wall_s") if judged else ""
            rss = _ratio(m.peak_rss_mb, peer, m.ok, "peak_rss_mb") if judged else ""
            result = _result(step, m) if step != "both" else ("" if m.ok else m.note)
            if m.other_pct > DISTURBED_PCT:
                result += " (DISTURBED)"
            figures = (
                f"{m.wall_s:>8.1f}{m.cpu_s:>8.1f}{m.peak_rss_mb:>13.0f}{m.other_pct:>6.0f}%"
                if m.status != "skipped"
                else f"{'-':>8}{'-':>8}{'-':>13}{'-':>7}"
            )
            lines.append(
                f"{size.label:>6}  {name:<15}{figures}{wall:>13}{rss:>12}  {result}".rstrip()
            )
    return lines


@dataclass
class Goal:
    name: str
    measured: str
    goal: str
    verdict: str  # MET, NOT MET, not measured


def goals(sizes: list[Size]) -> list[Goal]:
    by_rows = {s.rows: s for s in sizes}
    ten = _combined(by_rows[TEN_M]) if TEN_M in by_rows else None
    hundred = _combined(by_rows[HUNDRED_M]) if HUNDRED_M in by_rows else None
    ten_wall = ten.wall_s if ten is not None and ten.ok else None
    found = [
        _wall_goal("10M summary+report wall", ten, GOAL_10M_S, f"< {GOAL_10M_S:g} s"),
        _rss_goal("10M summary+report peak RSS", ten, GOAL_10M_MB),
        _wall_goal(
            "100M summary+report wall",
            hundred,
            None if ten_wall is None else 10 * ten_wall,
            "< 10x the 10M wall" + ("" if ten_wall is None else f" ({10 * ten_wall:.1f} s)"),
        ),
        _rss_goal("100M summary+report peak RSS", hundred, GOAL_100M_MB),
    ]
    for size in sizes:
        report = size.steps.get("report")
        mb = report.data.get("report_mb") if report and report.ok else None
        verdict = "not measured" if mb is None else ("MET" if mb < GOAL_REPORT_MB else "NOT MET")
        measured = "-" if mb is None else f"{mb:.2f} MB"
        found.append(Goal(f"{size.label} report.html size", measured, "< 5 MB", verdict))
    return found


def _wall_goal(name: str, m: Measure | None, limit: float | None, goal: str) -> Goal:
    if m is None:
        return Goal(name, "-", goal, "not measured")
    if m.status == "timeout":
        return Goal(name, f"> {m.wall_s:.0f} s", goal, "NOT MET (timeout)")
    if not m.ok:
        return Goal(name, "-", goal, f"not measured ({m.status})")
    if limit is None:
        return Goal(name, f"{m.wall_s:.1f} s", goal, "not judged (no 10M figure)")
    return Goal(name, f"{m.wall_s:.1f} s", goal, "MET" if m.wall_s < limit else "NOT MET")


def _rss_goal(name: str, m: Measure | None, limit: float) -> Goal:
    goal = f"< {limit / GiB:g} GiB"
    if m is None:
        return Goal(name, "-", goal, "not measured")
    if m.status == "killed":
        return Goal(name, f"> {m.peak_rss_mb:.0f} MB", goal, "NOT MET (killed)")
    if not m.ok:
        return Goal(name, "-", goal, f"not measured ({m.status})")
    verdict = "MET" if m.peak_rss_mb < limit else "NOT MET"
    return Goal(name, f"{m.peak_rss_mb:.0f} MB", goal, verdict)


def goal_lines(found: list[Goal]) -> list[str]:
    lines = [f"{'goal':<32}{'measured':>12}  {'goal':<34}verdict"]
    for g in found:
        lines.append(f"{g.name:<32}{g.measured:>12}  {g.goal:<34}{g.verdict}")
    return lines


# --- the engine comparison ---------------------------------------------------------------


@dataclass
class EngineRun:
    rows: int
    engine: str
    measure: Measure
    figures: dict[str, Any] | None
    check: str = ""


def run_engines(args: argparse.Namespace, size: Size, logs: Path) -> list[EngineRun]:
    limits = Limits(args.timeout, args.max_rss_mb, args.min_available_mb)
    env_memory = os.environ.get("REPORT_SCALE_DUCKDB_MEMORY")
    os.environ["REPORT_SCALE_DUCKDB_MEMORY"] = args.duckdb_memory
    engines = list(args.engines)
    if size.rows <= args.check_rows:
        engines.append("numpy")
    found = []
    try:
        for engine in engines:
            _say(f"{size.label}: {engine} ...")
            out = logs / f"engine-{engine}-{size.label}.json"
            out.unlink(missing_ok=True)
            cmd = [sys.executable, str(BENCH / "report_engines.py"), engine]
            cmd += [str(size.run_dir / RECORDS_FILE), str(out)]
            m = run_child(cmd, logs / f"engine-{engine}-{size.label}.log", limits)
            figures = json.loads(out.read_text(encoding="utf-8")) if m.ok else None
            found.append(EngineRun(size.rows, engine, m, figures))
            _say(f"{size.label}: {engine}: {m.wall_s:.1f} s, {m.peak_rss_mb:.0f} MB, {m.status}")
    finally:
        if env_memory is None:
            os.environ.pop("REPORT_SCALE_DUCKDB_MEMORY", None)
        else:
            os.environ["REPORT_SCALE_DUCKDB_MEMORY"] = env_memory
    _check(found)
    return found


def _check(runs: list[EngineRun]) -> None:
    """Each engine's figures against numpy's, else against the first engine's."""
    reference = next((r for r in runs if r.engine == "numpy" and r.figures), None)
    if reference is None:
        reference = next((r for r in runs if r.figures), None)
    for run in runs:
        if run is reference and run.engine == "numpy":
            run.check = "reference"
        elif run.figures is None or reference is None:
            run.check = "-"
        elif run is reference:
            run.check = "(compared with)"
        else:
            wrong = differences(run.figures, reference.figures or {})
            same = "= numpy" if reference.engine == "numpy" else f"= {reference.engine}"
            run.check = same if not wrong else f"MISMATCH ({len(wrong)})"
            run.measure.data["mismatches"] = wrong


def differences(got: dict[str, Any], want: dict[str, Any]) -> list[str]:
    wrong = []
    for name, row in want["endpoints"].items():
        mine = got["endpoints"].get(name, {})
        for stat, value in row.items():
            if mine.get(stat) != value:
                wrong.append(f"{name} {stat}: {mine.get(stat)!r}, numpy {value!r}")
    if got["windows"] != want["windows"]:
        theirs = {w[0]: w for w in want["windows"]}
        for w in got["windows"]:
            other = theirs.get(w[0])
            if other != w:
                wrong.append(f"window {w[0]} (count, p99): {w[1:]}, numpy {other and other[1:]}")
        if len(got["windows"]) != len(want["windows"]):
            wrong.append(f"{len(got['windows'])} windows, numpy {len(want['windows'])}")
    return wrong


def engines_table(runs: list[EngineRun]) -> list[str]:
    head = f"{'rows':>6}  {'engine':<14}{'wall s':>8}{'cpu s':>8}{'peak RSS MB':>13}{'other':>7}"
    lines = [f"{head}  check"]
    for run in runs:
        m = run.measure
        state = "" if m.ok else f"  {m.status.upper()}: {m.note}"[:140]
        state += " (DISTURBED)" if m.other_pct > DISTURBED_PCT else ""
        lines.append(
            f"{rows_label(run.rows):>6}  {run.engine:<14}{m.wall_s:>8.1f}{m.cpu_s:>8.1f}"
            f"{m.peak_rss_mb:>13.0f}{m.other_pct:>6.0f}%  {run.check}{state}"
        )
    return lines


def figures_lines(run: EngineRun) -> list[str]:
    """The figures one engine found, for a person to read."""
    if run.figures is None:
        return []
    stats = [*QUANTILES, "max"]
    lines = [
        f"figures at {rows_label(run.rows)} ({run.engine}), ms:",
        f"  {'endpoint':<22}{'count':>11}" + "".join(f"{s:>10}" for s in stats),
    ]
    for name, row in run.figures["endpoints"].items():
        values = "".join(f"{row[s]:>10.3f}" for s in stats)
        lines.append(f"  {name:<22}{row['count']:>11,}{values}")
    p99 = [w[2] for w in run.figures["windows"]]
    if p99:
        lines.append(
            f"  p99 per 60 s window of answered requests: {len(p99)} windows, from "
            f"{min(p99):.3f} to {max(p99):.3f} ms"
        )
    return lines


# --- main ---------------------------------------------------------------------------------


def _rows_list(text: str) -> list[int]:
    try:
        return [parse_rows(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _names(known: Sequence[str]) -> Any:
    def parse(text: str) -> list[str]:
        names = [part.strip() for part in text.split(",") if part.strip()]
        unknown = [n for n in names if n not in known]
        if unknown or not names:
            raise argparse.ArgumentTypeError(f"choose from {','.join(known)}: not {text!r}")
        return names

    return parse


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--rows",
        type=_rows_list,
        default=_rows_list("1e6,10e6,100e6"),
        help="sizes, in requests: 1e6,10e6,100e6 (1M,10M,100M also)",
    )
    p.add_argument("--seed", type=int, default=1, help="seed of the generated runs (1)")
    p.add_argument(
        "--rate",
        type=float,
        default=synthetic_run.DEFAULT_RATE,
        help="requests/s of the generated runs (2500)",
    )
    p.add_argument("--dir", type=Path, help="where the run directories are kept (a temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the temp dir of the run directories")
    p.add_argument(
        "--steps", type=_names(STEPS), default=list(STEPS), help="summary,report,compare,pandas"
    )
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per child (1800)")
    p.add_argument(
        "--max-rss-mb", type=float, default=8192.0, help="a child above this RSS is killed (8192)"
    )
    p.add_argument(
        "--min-available-mb",
        type=float,
        default=1024.0,
        help="a child is killed when the machine has less memory available (1024)",
    )
    p.add_argument(
        "--engines",
        nargs="?",
        const=",".join(ENGINE_ORDER),
        type=_names(ENGINE_ORDER),
        help=f"the engine comparison instead: {','.join(ENGINE_ORDER)} (all)",
    )
    p.add_argument(
        "--check-rows",
        type=parse_rows,
        default=TEN_M,
        help="--engines: check against numpy up to this size (10M)",
    )
    p.add_argument("--duckdb-memory", default="1GB", help="--engines: DuckDB's memory_limit (1GB)")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write every figure as JSON")
    args = p.parse_args(argv)
    if args.rate <= 0 or any(rows / args.rate <= 60.0 for rows in args.rows):
        p.error("each run must last over 60 s (release-gate's first stage): rows / --rate > 60")
    if args.timeout <= 0:
        p.error("--timeout must be above 0")
    args.steps = [s for s in STEPS if s in args.steps]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    harness.raise_on_interrupts()
    temp = args.dir is None
    if temp:
        args.dir = Path(tempfile.mkdtemp(prefix="report_scale-"))
    args.dir.mkdir(parents=True, exist_ok=True)
    args.dir = args.dir.resolve()
    logs = Path(tempfile.mkdtemp(prefix="report_scale-logs-"))
    code = 0
    try:
        code = engines_mode(args, logs) if args.engines else steps_mode(args, logs)
    except BenchError as exc:
        print(f"report_scale: error: {exc}", file=sys.stderr)
        code = 3
    except KeyboardInterrupt:
        print("report_scale: interrupted", file=sys.stderr)
        code = 130
    finally:
        harness.ignore_interrupts()
        shutil.rmtree(logs, ignore_errors=True)
        if temp and not args.keep:
            shutil.rmtree(args.dir, ignore_errors=True)
        elif temp:
            print(f"report_scale: kept {args.dir}", file=sys.stderr)
    return code


def steps_mode(args: argparse.Namespace, logs: Path) -> int:
    sizes = []
    for rows in args.rows:
        size = prepare(args, rows, logs)
        sizes.append(size)
        run_steps(args, size, logs)
    found = goals(sizes)
    print()
    for line in [*_header(args, ""), "", *map(_file_line, sizes), "", *steps_table(sizes)]:
        print(line)
    print(_STEPS_NOTE)
    for line in goal_lines(found):
        print(line)
    if args.json:
        doc = {
            "settings": _settings(args),
            "versions": _versions(),
            "sizes": [_size_json(s) for s in sizes],
            "goals": [asdict(g) for g in found],
        }
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    return 0


_STEPS_NOTE = """
   wall s: from the child's start to its exit (interpreter start and imports included);
   cpu s: its user + system time; peak RSS: its ru_maxrss; other: CPU time of everything
   else on the machine over the step, % of one core (over 10%: DISTURBED). summary+report:
   the walls added, the higher peak. wall/pandas, RSS/pandas: against the naive pandas step
   of the same size.
"""


def engines_mode(args: argparse.Namespace, logs: Path) -> int:
    runs: list[EngineRun] = []
    for rows in args.rows:
        size = prepare(args, rows, logs)
        runs += run_engines(args, size, logs)
    print()
    for line in [*_header(args, " --engines"), ""]:
        print(line)
    print(
        "exact nearest-rank p50, p90, p95, p99, p99.9 and max of latency_ms per endpoint and "
        "over all, and p99 per 60 s window of answered requests"
    )
    print(f"DuckDB: memory_limit {args.duckdb_memory}, 2 threads; Polars: streaming engine")
    print()
    for line in engines_table(runs):
        print(line)
    wrong = [r for r in runs if r.check.startswith("MISMATCH")]
    for run in wrong:
        print(f"\n!!! MISMATCH: {run.engine} at {rows_label(run.rows)} differs from the reference:")
        for line in run.measure.data.get("mismatches", [])[:20]:
            print(f"!!!   {line}")
    shown = sorted((r for r in runs if r.figures), key=lambda r: (r.rows, "duckdb" in r.engine))
    if shown:
        largest = shown[-1]
        print()
        for line in figures_lines(largest):
            print(line)
    if args.json:
        doc = {
            "settings": _settings(args),
            "versions": _versions(),
            "engines": [
                {
                    "rows": r.rows,
                    "engine": r.engine,
                    "check": r.check,
                    **asdict(r.measure),
                    "figures": r.figures,
                }
                for r in runs
            ],
        }
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    return 1 if wrong else 0


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "rows": args.rows,
        "seed": args.seed,
        "rate": args.rate,
        "dir": str(args.dir),
        "steps": args.steps,
        "engines": args.engines,
        "timeout_s": args.timeout,
        "max_rss_mb": args.max_rss_mb,
        "min_available_mb": args.min_available_mb,
        "duckdb_memory": args.duckdb_memory,
    }


def _size_json(size: Size) -> dict[str, Any]:
    both = _combined(size)
    return {
        "rows": size.rows,
        "run_dir": str(size.run_dir),
        "made": size.made,
        "generate": asdict(size.generate) if size.generate else None,
        "steps": {k: asdict(v) for k, v in size.steps.items()},
        "summary_and_report": asdict(both) if both else None,
    }


if __name__ == "__main__":
    sys.exit(main())
