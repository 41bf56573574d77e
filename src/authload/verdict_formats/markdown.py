"""Suites as a Markdown summary for a person (a CI job's summary page, a merge request):
the verdict, the SLOs, the endpoints, what the default gates found and, when there is a
baseline, the comparison with it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from authload.rundir.capacity import CapacityDocument
from authload.rundir.summary import Summary
from authload.verdict_formats.cases import FAILED, PASSED, Case, Suite
from authload.verdict_formats.compare_cases import INSUFFICIENT_DATA, change, figure
from authload.verdict_formats.units import ms, share

MARKS = {PASSED: "✅", FAILED: "❌"}
SKIP_MARK = "⏭️"


def run_markdown(summary: Summary, suite: Suite) -> str:
    """A run's summary: its verdict, SLOs, endpoints and default gates."""
    return "\n\n".join([heading(suite, run_line(summary, suite)), *run_sections(summary, suite)])


def run_sections(summary: Summary, suite: Suite) -> list[str]:
    return [
        cases_section("SLOs", [c for c in suite.cases if c.group in ("slo", "run")]),
        endpoints_section(summary),
        gates_section(summary, suite) + "\n",
    ]


def comparison_markdown(
    suite: Suite,
    comparison: Mapping[str, Any],
    candidate: tuple[Summary, Suite] | None = None,
) -> str:
    """A comparison's summary, then the candidate run's own when it has a summary."""
    line = (
        f"{len(comparison['rows'])} rows compared, {comparison.get('deciding', 0)} with "
        f"enough data to decide."
    )
    parts = [heading(suite, line), comparison_section(suite, comparison) + "\n"]
    if candidate is not None:
        summary, run = candidate
        title = f"## The candidate, {run.name}: {run.verdict.upper()}"
        parts += [f"{title}\n\n{run_line(summary, run)}", *run_sections(summary, run)]
    return "\n\n".join(parts)


def capacity_markdown(data: CapacityDocument, suite: Suite) -> str:
    """A capacity search's summary: its answer, the steps, the SLOs at the deciding step."""
    knee = data.knee
    lines = [f"Capacity: {data.capacity.note}."]
    if knee is not None:
        lines.append(f"Knee: {knee['level']:g} {data.unit}.")
    breach = data.first_breach
    if breach is not None and breach.get("slo"):
        lines.append(f"First SLO to break: `{breach['slo']}` at {breach['level']:g} {data.unit}.")
    slo_cases = [c for c in suite.cases if c.group != "capacity"]
    title = f"SLOs at {slo_cases[0].group}" if slo_cases else "SLOs"
    return (
        "\n\n".join(
            p
            for p in (
                heading(suite, " ".join(lines)),
                steps_section(data),
                cases_section(title, slo_cases),
            )
            if p
        )
        + "\n"
    )


def heading(suite: Suite, line: str) -> str:
    mark = MARKS[FAILED] if suite.failures else MARKS[PASSED]
    report = f"\n\nReport: `{suite.report}`" if suite.report else ""
    return f"## {mark} authload {suite.name}: {suite.verdict.upper()}\n\n{line}{report}"


def run_line(summary: Summary, suite: Suite) -> str:
    line = (
        f"Scenario `{summary.scenario}`, status {summary.status}, "
        f"{suite.duration_s:.0f} s, {summary.requests} requests."
    )
    if not summary.reconciliation.match:
        line += " **Request counts do not reconcile** (summary.json `reconciliation`)."
    return line


def cases_section(title: str, cases: Sequence[Case]) -> str:
    if not cases:
        return f"### {title}\n\nNone in this run."
    rows = [
        [mark(c), f"`{c.name}`", c.endpoint or "-", c.value, c.threshold, c.detail or "-"]
        for c in cases
    ]
    head = ["", "SLO", "endpoint", "measured", "threshold", ""]
    return f"### {title}\n\n{table(head, rows)}{failures(cases)}"


def endpoints_section(summary: Summary) -> str:
    endpoints = summary.endpoints
    rows = [
        [
            f"`{name}`",
            str(row.get("count", 0)),
            "-" if row.get("rate_per_s") is None else f"{row['rate_per_s']:.1f}",
            ms(row.get("p50")),
            ms(row.get("p95")),
            ms(row.get("p99")),
            share(row.get("error_rate")),
        ]
        for name, row in endpoints.items()
    ]
    head = ["endpoint", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors"]
    return "### Endpoints\n\n" + (table(head, rows) if rows else "No requests.")


def gates_section(summary: Summary, suite: Suite) -> str:
    if not summary.gates:
        return "### Default gates\n\nNot in this run's summary."
    cases = [c for c in suite.cases if c.group == "gate"]
    if not cases:
        return "### Default gates\n\nNone."
    rows = [[mark(c), f"`{c.name}`", c.value, c.threshold, c.detail or c.message] for c in cases]
    head = ["", "gate", "measured", "threshold", "evidence"]
    return f"### Default gates\n\n{table(head, rows)}{failures(cases)}"


def comparison_section(suite: Suite, comparison: Mapping[str, Any]) -> str:
    rows = [r for r in comparison["rows"] if r["verdict"] != INSUFFICIENT_DATA]
    lines = [
        [
            MARKS[FAILED] if r["verdict"] == "regression" else MARKS[PASSED],
            f"`{r['endpoint']}`",
            str(r["stat"]),
            figure(r, "base"),
            figure(r, "candidate"),
            change(r, r.get("change")),
            f"[{change(r, r.get('ci_low'))}, {change(r, r.get('ci_high'))}]",
            str(r["verdict"]),
        ]
        for r in rows
    ]
    head = ["", "endpoint", "stat", "base", "candidate", "change", "interval", "verdict"]
    left = len(comparison["rows"]) - len(rows)
    note = f"\n\n{left} rows had too little data to decide." if left else ""
    body = table(head, lines) if lines else "No row had enough data to decide."
    return (
        f"### Compared with the baseline: {str(comparison['verdict']).upper()}\n\n"
        f"{suite.name}; latency tolerance {comparison['tolerance']:.1%}, error-rate tolerance "
        f"{comparison['error_tolerance_pp']:g} pp, {comparison['confidence']:.0%} simultaneous "
        f"intervals.\n\n{body}{note}{failures(suite.cases)}"
    )


def steps_section(data: CapacityDocument) -> str:
    rows = [
        [
            str(s["index"]),
            f"{s['level']:g}",
            str(s["verdict"]),
            _n(s.get("throughput_rps")),
            _n(s.get("ok_rps")),
            ms(s.get("p99_ms")),
            share(s.get("error_rate")),
            f"`{s['run_dir']}`",
        ]
        for s in data.steps
    ]
    head = ["step", data.unit, "verdict", "req/s", "ok/s", "p99 ms", "errors", "run"]
    return "### Steps\n\n" + (table(head, rows) if rows else "No step ran.")


def failures(cases: Iterable[Case]) -> str:
    lines = [f"- `{c.name}`: {cell(c.message)}" for c in cases if c.outcome == FAILED]
    return "\n\n" + "\n".join(lines) if lines else ""


def mark(case: Case) -> str:
    return MARKS.get(case.outcome, SKIP_MARK)


def table(head: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = [row(head), row(["---"] * len(head))]
    lines += [row(r) for r in rows]
    return "\n".join(lines)


def row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cell(c) for c in cells) + " |"


def cell(text: str) -> str:
    """Text safe inside a table cell: no pipe ends it, no newline breaks it."""
    return text.replace("|", "\\|").replace("\n", " ")


def _n(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"
