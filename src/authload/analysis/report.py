"""The run report: one self-contained HTML file, ``RUN_DIR/report.html``.

Read at a glance, top to bottom: the verdict and the SLOs, the per-endpoint figures of
``summary.json``, whether the request counts reconcile, the flow outcomes, then plots over
time with the stages, storms, mass logouts and fault windows marked. CSS is inline and every
plot is an inline PNG, so the file opens anywhere without a network.

The plots are :mod:`authload.analysis.figures` (notebooks draw the same ones), the HTML
building blocks :mod:`authload.analysis.page`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from authload.analysis.drift_report import drift_section
from authload.analysis.figures import (
    amplification_figure,
    outcomes_figure,
    spectrum_figure,
    status_figure,
    throughput_latency_figure,
)
from authload.analysis.page import document, escape, frame_table, img, num, pairs, table
from authload.analysis.query import Records
from authload.analysis.resilience import (
    RECOVERY_KINDS,
    error_bursts,
    latency_comparison,
    latency_spectra,
    recovery_times,
    retry_summary,
    sessions_lost,
)
from authload.analysis.summary import summary_notes
from authload.analysis.timeline import event_windows, fault_windows, timeline
from authload.errors import ResultsError
from authload.rundir.events import Event, FaultWindow, read_events
from authload.rundir.files import MANIFEST_FILE, MOCK_FAULTS_FILE, REPORT_FILE
from authload.rundir.jsonfiles import read_json
from authload.rundir.manifest import Manifest, read_manifest
from authload.rundir.summary import (
    GateOutcome,
    ReconciledCounts,
    SloOutcome,
    Summary,
    read_summary,
)
from authload.scenario.slo_grammar import parse_slo

__all__ = [
    "RunData",
    "latency_spectra",
    "load_run",
    "newest_run",
    "render_report",
    "window_for",
    "write_report",
]


_VERDICT_COLOURS = {"pass": "#1a7f37", "fail": "#cf222e"}  # invalid, aborted, error: amber
_ENDPOINT_HEAD = (
    *("endpoint", "count", "rate /s", "p50 ms", "p90 ms", "p95 ms", "p99 ms", "p99.9 ms"),
    *("max ms", "error rate", "errors", "statuses", "retries", "ok p50 ms", "ok p99 ms"),
)
_JOURNEY_HEAD = (
    *("journeys", "count", "success", "dropped", "sessions lost", "waited", "longest wait ms"),
    *("p50 ms", "p95 ms", "p99 ms", "max ms"),
)
_GATE_HEAD = ("gate", "severity", "result", "evidence")


# --------------------------------------------------------------------------------- run data


@dataclass(frozen=True)
class RunData:
    """Everything a report reads from a run directory; the records stay in their Parquet
    file, queried (:class:`~authload.analysis.query.Records`)."""

    run_dir: Path
    manifest: Manifest
    summary: Summary
    records: Records
    events: list[Event]
    fault_history: list[FaultWindow]  # empty without mock_faults.json

    @cached_property
    def _bounds(self) -> dict[str, Any]:
        """The first request's start, the last one's end, whether any had an intended start."""
        return self.records.row(
            "SELECT min(t) AS start, max(t + latency_ms / 1000.0) AS end, "
            "bool_or(t_intended IS NOT NULL) AS intended FROM {records}"
        )

    @property
    def start_t(self) -> float:
        """The origin of the time axis (unix s): the first request, else the run's start."""
        if len(self.records):
            return float(self._bounds["start"])
        start = self.manifest.started_at()
        return 0.0 if start is None else start.timestamp()

    @property
    def end_t(self) -> float:
        """When the last request ended (unix s), else the run's end."""
        if len(self.records):
            return float(self._bounds["end"])
        end = self.manifest.ended_at()
        return self.start_t if end is None else end.timestamp()

    @property
    def open_model(self) -> bool:
        model = self.manifest.scenario_field("load", "model")
        return bool(model == "open" or self._bounds.get("intended"))

    def since_start(self, frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
        """``frame`` with its time ``columns`` (unix s) as seconds since :attr:`start_t`."""
        return frame.assign(**{c: frame[c] - self.start_t for c in columns if c in frame})

    def marks(self) -> pd.DataFrame:
        """Stages, storms, mass logouts, aborts and the mock's fault windows as ``[kind,
        start, end, label]`` (unix s), by start; a window found both in the events and in
        ``mock_faults.json`` once."""
        frames = [
            frame
            for frame in (
                event_windows(self.events, self.end_t),
                fault_windows(self.fault_history, self.end_t),
            )
            if len(frame)
        ]
        if not frames:
            return event_windows([], self.end_t)
        marks = pd.concat(frames, ignore_index=True).drop_duplicates(["kind", "start", "end"])
        return marks.sort_values(["start", "end"], kind="stable").reset_index(drop=True)


def load_run(run_dir: str | Path) -> RunData:
    """Read a finished run directory; a :class:`ResultsError` if it is not one."""
    path = Path(run_dir)
    if not (path / MANIFEST_FILE).is_file():
        raise ResultsError(f"{path}: not a run directory (no {MANIFEST_FILE})")
    history = read_json(path / MOCK_FAULTS_FILE) if (path / MOCK_FAULTS_FILE).is_file() else []
    if isinstance(history, dict):  # the whole GET /_mock/faults answer
        history = history.get("history", [])
    return RunData(
        run_dir=path,
        manifest=read_manifest(path),
        summary=read_summary(path),
        records=Records.of_run(path),
        events=read_events(path),
        fault_history=[FaultWindow.model_validate(entry) for entry in history],
    )


def newest_run(runs_dir: str | Path = "runs", back: int = 0) -> Path:
    """The newest run directory under ``runs_dir`` (names start with the UTC time), or the one
    ``back`` runs before it."""
    runs = sorted(p.parent for p in Path(runs_dir).glob(f"*/{MANIFEST_FILE}"))
    if len(runs) <= back:
        raise ResultsError(f"{runs_dir}: fewer than {back + 1} run directories")
    return runs[-1 - back]


def window_for(span_s: float) -> float:
    """A time window giving at most ~400 points over ``span_s``: 1 s for short runs, at most
    60 s (the longest :func:`timeline` takes)."""
    for window in (1.0, 2.0, 5.0, 10.0, 15.0, 30.0):
        if span_s / window <= 400:
            return window
    return 60.0


# ---------------------------------------------------------------------------------- figures


# ------------------------------------------------------------------------------------- html


def _counts(counts: Mapping[str, object]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in counts.items()) or "-"


def _pass(passed: bool) -> tuple[str, str]:
    return ("pass", "pass") if passed else ("FAIL", "fail")


def _slo_rows(slos: list[SloOutcome]) -> list[list[Any]]:
    rows = []
    for slo in slos:
        spec = parse_slo(slo.slo)
        unit = "%" if spec.is_share else "/s" if spec.stat == "rate" else " ms"
        digits = 3 if spec.is_share else 1
        rows.append(
            [
                slo.slo,
                num(slo.value, digits, unit),
                f"{spec.op} {num(slo.threshold, digits, unit)}",
                _pass(slo.passed),
                slo.count,
            ]
        )
    return rows


def _endpoint_rows(endpoints: Mapping[str, Mapping[str, Any]]) -> list[list[Any]]:
    stats = ("p50", "p90", "p95", "p99", "p99.9", "max")
    return [
        [name, row["count"], num(row["rate_per_s"])]
        + [num(row[s]) for s in stats]
        + [
            num(row["error_rate"] * 100, 2, "%"),
            _counts(row["errors"]),
            _counts(row["statuses"]),
            row["retries"],
            num((row.get("ok") or {}).get("p50")),
            num((row.get("ok") or {}).get("p99")),
        ]
        for name, row in endpoints.items()
    ]


def _journey_rows(journeys: Mapping[str, Mapping[str, Any]]) -> list[list[Any]]:
    return [
        [
            name,
            row["count"],
            num(None if row["success_rate"] is None else row["success_rate"] * 100, 2, "%"),
            row["dropped"],
            row["sessions_lost"],
            row["waited"],
            num(row["max_wait_ms"]),
            *(num(row[s]) for s in ("p50", "p95", "p99", "max")),
        ]
        for name, row in journeys.items()
    ]


def _gate_rows(gates: list[GateOutcome]) -> list[list[Any]]:
    rows = []
    for gate in gates:
        result: Any = ("off", "") if not gate.enabled else _pass(gate.passed)
        rows.append([gate.gate, gate.severity, result, gate.evidence])
    return rows


def _reconciliation(reconciliation: ReconciledCounts) -> str:
    endpoints = reconciliation.endpoints
    on_mock = any(r.mock is not None for r in endpoints.values())
    sources = "records, Locust and the mock" if on_mock else "records and Locust"
    status = (
        f'<p class="badge pass">request counts reconcile ({sources})</p>'
        if reconciliation.match
        else f'<p class="badge fail">request counts do NOT reconcile ({sources})</p>'
    )
    rows = [
        [
            name,
            *(num(n) for n in (r.records, r.locust, r.answered, r.mock)),
            _pass(r.match),
        ]
        for name, r in endpoints.items()
    ]
    return status + table(["endpoint", "records", "Locust", "answered", "mock", ""], rows)


def _plots(run: RunData) -> str:
    if run.records.empty:
        return "<p class=note>No requests were recorded: nothing to plot.</p>"
    origin, records = run.start_t, run.records
    window = window_for(run.end_t - origin)
    tl = timeline(records, window_s=window, start=origin)
    marks = run.marks()
    parts = [
        img("Throughput and latency over time", throughput_latency_figure(tl, origin, marks)),
        img("Responses by status over time", status_figure(tl, origin, marks)),
        img("Latency by percentile", spectrum_figure(latency_spectra(records))),
        img("Retry amplification over time", amplification_figure(tl, origin, marks)),
    ]
    outcomes = run.summary.outcomes
    if outcomes:
        parts.append(img("Flow outcomes and sessions lost", outcomes_figure(outcomes)))
    return f"<p class=note>{escape(f'{window:g} s windows')}</p>" + "".join(parts)


def _details(run: RunData) -> str:
    """Open-model latency, retries, 5xx bursts, events and fault windows."""
    records = run.records
    parts = []
    if len(records) and run.open_model:
        parts.append("<h2>Measured vs from intended start (open model)</h2>")
        parts.append(frame_table(latency_comparison(records).reset_index(), 1))
    if len(records):
        parts.append("<h2>Retries</h2>" + pairs(retry_summary(records)))
        bursts = run.since_start(error_bursts(records, window_s=1.0), "start", "end")
        parts.append("<h2>5xx bursts</h2>" + frame_table(bursts))
    lost = sessions_lost(run.events)
    if lost:
        parts.append("<h2>Sessions lost</h2>" + pairs(lost))
    marks = run.marks()
    parts.append("<h2>Events and fault windows</h2>")
    parts.append(frame_table(run.since_start(marks, "start", "end"), 1))
    if len(records) and marks["kind"].isin(RECOVERY_KINDS).any():
        recovery = recovery_times(records, marks)[["kind", "label", "event_end", "recovery_s"]]
        parts.append("<h2>Recovery after storms, mass logouts and faults</h2>")
        parts.append(frame_table(run.since_start(recovery, "event_end"), 1))
    parts.append("<p class=note>times in seconds since the first request</p>")
    return "".join(parts)


def _run_table(manifest: Manifest, summary: Summary) -> str:
    info = {
        "scenario": manifest.scenario_name or summary.scenario,
        "description": manifest.scenario.get("description", ""),
        "status": manifest.status,
        "requests": summary.requests,
        "duration (s)": num(summary.duration_s),
        "load model": manifest.scenario_field("load", "model"),
        "retry policy": manifest.scenario_field("retry", "policy"),
        "seed": manifest.seed,
        "processes": manifest.processes,
        "died": ", ".join(f"{d.worker} (last record {d.last_record})" for d in manifest.died)
        or "-",
        "git revision": manifest.git_revision,
        "versions": _counts(manifest.versions),
    }
    return table(["", ""], [[k, "-" if v is None else v] for k, v in info.items()], "kv")


def render_report(run: RunData, drift: str | None = None) -> str:
    """The report of a run as one self-contained HTML page; ``drift``: its drift section
    if already made (:func:`~authload.analysis.drift_report.drift_section`)."""
    manifest, summary = run.manifest, run.summary
    verdict = summary.verdict
    meta = (
        f"target {manifest.target} · start {manifest.start} · "
        f"end {manifest.end or '?'} · status {manifest.status}"
    )
    slos, outcomes = summary.slos, summary.outcomes
    slo_table = (
        table(["SLO", "measured", "threshold", "result", "requests"], _slo_rows(slos))
        if slos
        else "<p class=note>the scenario sets no SLOs</p>"
    )
    outcome_table = (
        table(["outcome", "journeys"], sorted(outcomes.items()))
        if outcomes
        else "<p class=note>no flow outcomes recorded</p>"
    )
    for note in summary_notes(summary):
        outcome_table = f'<p class="badge fail">{escape(note)}</p>' + outcome_table
    body = "".join(
        [
            f"<h2>SLOs</h2>{slo_table}",
            "<h2>Default gates</h2>" + table(_GATE_HEAD, _gate_rows(summary.gates)),
            "<h2>Endpoints</h2>" + table(_ENDPOINT_HEAD, _endpoint_rows(summary.endpoints)),
            "<h2>Journeys</h2>" + table(_JOURNEY_HEAD, _journey_rows(summary.journeys)),
            "<h2>Reconciliation</h2>" + _reconciliation(summary.reconciliation),
            f"<h2>Flow outcomes</h2>{outcome_table}",
            f"<h2>Plots</h2>{_plots(run)}",
            _details(run),
            _drift(run) if drift is None else drift,
            "<h2>Run</h2>" + _run_table(manifest, summary),
        ]
    )
    return document(
        f"authload report: {summary.scenario}",
        meta,
        verdict.upper(),
        _VERDICT_COLOURS.get(verdict, "#9a6700"),
        body,
    )


def _drift(run: RunData, keep: bool = False) -> str:
    """The drift section, for runs long enough; ``keep`` also puts it in summary.json."""
    return drift_section(run, keep=keep)


def write_report(run_dir: Path) -> Path:
    """Write ``run_dir/report.html`` and return its path; a run long enough for drift
    analysis also gets it in ``summary.json`` under ``drift``."""
    run = load_run(run_dir)
    path = run.run_dir / REPORT_FILE
    partial = path.with_name(f".{REPORT_FILE}.partial")
    try:
        partial.write_text(render_report(run, _drift(run, keep=True)), encoding="utf-8")
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return path
