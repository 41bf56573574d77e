"""What the commands print: tables and verdict lines, from results the handlers got."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from authload.analysis.compare import Comparison
    from authload.analysis.history import LatestComparison, RunIndex
    from authload.run.smoke import Step
    from authload.rundir.summary import GateOutcome, Summary


def print_summary(summary: Summary) -> None:
    """Per endpoint (every attempt, and the expected answers alone), per flow's journeys,
    each SLO, each default gate, and the notes a person must read before the verdict."""
    from authload.analysis.summary import summary_notes

    print(
        f"{'endpoint':<22} {'count':>7} {'rps':>7} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'p99 ms':>8} {'errors':>7} {'ok p50':>8} {'ok p99':>8}"
    )
    for name, row in summary.endpoints.items():
        ok = row.get("ok") or {}
        print(
            f"{name:<22} {row['count']:>7} {ms(row['rate_per_s'], 7)} {ms(row['p50'])} "
            f"{ms(row['p95'])} {ms(row['p99'])} {row['error_rate']:>7.2%} "
            f"{ms(ok.get('p50'))} {ms(ok.get('p99'))}"
        )
    _print_journeys(summary.journeys)
    for slo in summary.slos:
        mark = "ok  " if slo.passed else "FAIL"
        value = "no data" if slo.value is None else f"{slo.value:.4g}"
        print(f"SLO {mark} {slo.slo}  (measured {value})")
    for gate in summary.gates:
        print(f"gate {_gate_mark(gate):<7} {gate.gate}: {gate.evidence}")
    for note in summary_notes(summary):
        print(f"note: {note}")


def _gate_mark(gate: GateOutcome) -> str:
    if not gate.enabled:
        return "off"
    return "ok" if gate.passed else gate.severity.upper()


def _print_journeys(journeys: dict[str, Any]) -> None:
    if not journeys or not journeys.get("*", {}).get("count"):
        return
    print(
        f"{'journeys':<22} {'count':>7} {'success':>8} {'dropped':>7} {'lost':>5} "
        f"{'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'waited':>7}"
    )
    for name, row in journeys.items():
        rate = row["success_rate"]
        print(
            f"{name:<22} {row['count']:>7} {'-' if rate is None else f'{rate:.2%}':>8} "
            f"{row['dropped']:>7} {row['sessions_lost']:>5} {ms(row['p50'])} "
            f"{ms(row['p95'])} {ms(row['p99'])} {row['waited']:>7}"
        )


def print_drift(summary: Summary) -> None:
    """What the drift analysis flagged (summary.json's ``drift``; long runs only)."""
    drift = summary.drift
    if drift is None:
        return
    flagged = [*drift.get("flagged", []), *drift.get("harness_flagged", [])]
    print(f"drift: {len(flagged) or 'nothing'} flagged")
    for line in flagged:
        print(f"  {line}")


def print_comparison(result: Comparison) -> None:
    """The comparison's table and verdict."""
    print(
        f"ignored: latency changes within {result.tolerance:.1%} or within "
        f"{result.floor_ms:g} ms, amplification changes within {result.tolerance:.1%}, "
        f"error-rate changes within {result.error_tolerance_pp:g} pp; "
        f"{result.confidence:.0%} intervals, simultaneous over the {result.deciding} rows "
        f"with enough data (each {result.row_confidence:.2%}; {result.resamples} bootstrap "
        f"resamples)"
    )
    ci = f"{result.confidence:.0%} CI"
    print(
        f"{'endpoint':<22} {'stat':<13} {'base':>10} {'candidate':>10} {'change':>9}  "
        f"{ci:<22} verdict"
    )
    for row in result.rows:
        pp = row.unit == "pp"  # a share (errors, failed journeys, dropped arrivals)
        value = ("{:>9.2%}" if pp else _ROW_VALUE.get(row.stat, "{:>7.1f} ms")).format
        change = "{:+.2f} pp".format if pp else "{:+.1%}".format
        base_s, candidate_s = (
            "-".rjust(10) if v is None else value(v) for v in (row.base, row.candidate)
        )
        change_s = "-" if row.change is None else change(row.change)
        interval = "-"
        if row.ci_low is not None and row.ci_high is not None:
            interval = f"[{change(row.ci_low)}, {change(row.ci_high)}]"
        note = f" ({row.note})" if row.note else ""
        print(
            f"{row.endpoint:<22} {row.stat:<13} {base_s:>10} {candidate_s:>10} "
            f"{change_s:>9}  {interval:<22} {row.verdict}{note}"
        )
    print(f"verdict: {result.verdict.upper()}")


_ROW_VALUE = {"amplification": "{:>8.2f} x"}  # else ms


def print_latest(result: LatestComparison) -> None:
    """The latest run, the baseline it is compared with, and the notes (the table follows)."""
    latest = result.latest
    print(f"latest {latest.path} ({latest.start:%Y-%m-%d %H:%M} UTC, {latest.verdict})")
    n = len(result.baseline)
    print(
        f"baseline: {n} finished run{'s' if n != 1 else ''} of {latest.scenario} on "
        f"{latest.target} before it, records pooled:"
    )
    for r in result.baseline:
        print(f"  {r.path} ({r.start:%Y-%m-%d %H:%M} UTC, {r.verdict})")
    for note in result.notes:
        print(f"note: {note}")


def print_runs(found: RunIndex, total: int) -> None:
    """The runs table; how many of the ``total`` indexed it shows on stderr."""
    print(
        f"{'start (UTC)':<19}  {'scenario':<18} {'target':<8} {'revision':<10} "
        f"{'duration':>9}  {'verdict':<8} {'requests':>9}  run"
    )
    for r in found.runs:
        start = r.start.strftime("%Y-%m-%d %H:%M:%S") if r.start else "-"
        name = str(r.path.relative_to(found.root)) if r.path != found.root else str(r.path)
        detail = f" ({r.kind}: {r.detail})" if r.kind != "run" else ""
        print(
            f"{start:<19}  {r.scenario or '-':<18} {r.target or '-':<8} "
            f"{(r.git_revision or '-')[:10]:<10} {duration(r.duration_s):>9}  "
            f"{r.verdict or '-':<8} {'-' if r.requests is None else r.requests:>9}  "
            f"{name}{detail}"
        )
    print(f"{len(found.runs)} of {total} runs under {found.root}", file=sys.stderr)


def print_smoke(steps: list[Step], passed: bool) -> None:
    """Each step against its contract, the endpoints not reached, the verdict."""
    from authload.contracts import ENDPOINTS

    print(f"{'endpoint':<22} {'status':>6} {'latency ms':>11}  result")
    for s in steps:
        print(f"{s.endpoint:<22} {s.status:>6} {s.latency_ms:>11.2f}  {s.problem or 'ok'}")
    missing = sorted(set(ENDPOINTS) - {s.endpoint for s in steps})
    if missing:
        print(f"not reached: {', '.join(missing)}")
    print(
        f"verdict: {'PASS' if passed else 'FAIL'} "
        f"({sum(s.ok for s in steps)}/{len(ENDPOINTS)} endpoints match their contract)"
    )


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = round(seconds)
    if whole >= 3600:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    if whole >= 60:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{seconds:.0f} s"


def ms(value: float | None, width: int = 8) -> str:
    return "-".rjust(width) if value is None else f"{value:>{width}.1f}"
