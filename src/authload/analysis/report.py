"""The run report: one self-contained HTML file, ``RUN_DIR/report.html``.

Read at a glance, top to bottom: the verdict and the SLOs, the per-endpoint figures of
``summary.json``, whether the request counts reconcile, the flow outcomes, then plots over
time with the stages, storms, mass logouts and fault windows marked. CSS is inline and every
plot is an inline PNG, so the file opens anywhere without a network.

Figures are drawn on :class:`~matplotlib.figure.Figure` objects rendered by the Agg canvas,
never through pyplot: building a report changes no global matplotlib state (backend, style,
open figures). The figure functions are public so that notebooks draw the same plots.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, NullLocator

from authload.analysis.errors import (
    RECOVERY_KINDS,
    error_bursts,
    latency_comparison,
    latency_spectrum,
    recovery_times,
    retry_summary,
    sessions_lost,
)
from authload.analysis.stats import load_records
from authload.analysis.timeline import event_windows, fault_windows, timeline
from authload.errors import ResultsError
from authload.results import MANIFEST_FILE, SUMMARY_FILE, read_events, read_json
from authload.scenario import SLO_PATTERN

__all__ = [
    "FAULTS_FILE",
    "REPORT_FILE",
    "RunData",
    "amplification_figure",
    "figure_png",
    "latency_spectra",
    "load_run",
    "newest_run",
    "outcomes_figure",
    "render_report",
    "spectrum_figure",
    "status_figure",
    "throughput_latency_figure",
    "window_for",
    "write_report",
]

REPORT_FILE = "report.html"
FAULTS_FILE = "mock_faults.json"  # the mock's fault history (GET /_mock/faults), if saved

_VERDICT_COLOURS = {"pass": "#1a7f37", "fail": "#cf222e"}  # aborted, error: amber
_SPAN_COLOURS = {"refresh_storm": "#0969da", "mass_logout": "#8250df", "fault": "#cf222e"}
_STATUS_BANDS = (  # label, column of timeline(), colour
    ("2xx", "ok", "#2da44e"),
    ("4xx (not 429)", "s4xx_other", "#bf8700"),
    ("429", "s429", "#fb8f44"),
    ("5xx (not 503)", "s5xx_other", "#a40e26"),
    ("503", "s503", "#ff8182"),
    ("no answer", "no_answer", "#57606a"),
)
_ENDPOINT_HEAD = (
    *("endpoint", "count", "rate /s", "p50 ms", "p90 ms", "p95 ms", "p99 ms", "p99.9 ms"),
    *("max ms", "error rate", "errors", "statuses", "retries"),
)
_SPECTRUM_TICKS = (0.5, 0.9, 0.99, 0.999, 0.9999, 0.99999, 0.999999)


# --------------------------------------------------------------------------------- run data


@dataclass(frozen=True)
class RunData:
    """Everything a report reads from a run directory."""

    run_dir: Path
    manifest: dict[str, Any]
    summary: dict[str, Any]
    records: pd.DataFrame
    events: list[dict[str, Any]]
    fault_history: list[dict[str, Any]]  # empty without mock_faults.json

    @property
    def start_t(self) -> float:
        """The origin of the time axis (unix s): the first request, else the run's start."""
        if len(self.records):
            return float(self.records["t"].min())
        return _iso_t(self.manifest.get("start")) or 0.0

    @property
    def end_t(self) -> float:
        """When the last request ended (unix s), else the run's end."""
        if len(self.records):
            return float((self.records["t"] + self.records["latency_ms"] / 1000.0).max())
        return _iso_t(self.manifest.get("end")) or self.start_t

    @property
    def open_model(self) -> bool:
        load = self.manifest.get("scenario", {}).get("load", {})
        return bool(load.get("model") == "open" or self.records["t_intended"].notna().any())

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
    history = read_json(path / FAULTS_FILE) if (path / FAULTS_FILE).is_file() else []
    if isinstance(history, dict):  # the whole GET /_mock/faults answer
        history = history.get("history", [])
    return RunData(
        run_dir=path,
        manifest=dict(read_json(path / MANIFEST_FILE)),
        summary=dict(read_json(path / SUMMARY_FILE)),
        records=load_records(path),
        events=read_events(path),
        fault_history=list(history),
    )


def newest_run(runs_dir: str | Path = "runs", back: int = 0) -> Path:
    """The newest run directory under ``runs_dir`` (names start with the UTC time), or the one
    ``back`` runs before it."""
    runs = sorted(p.parent for p in Path(runs_dir).glob(f"*/{MANIFEST_FILE}"))
    if len(runs) <= back:
        raise ResultsError(f"{runs_dir}: fewer than {back + 1} run directories")
    return runs[-1 - back]


def latency_spectra(records: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The latency spectrum over all endpoints (``*``) and of each endpoint."""
    spectra = {"*": latency_spectrum(records)}
    for name in sorted(records["endpoint"].unique()):
        spectra[str(name)] = latency_spectrum(records, endpoint=str(name))
    return spectra


def window_for(span_s: float) -> float:
    """A time window giving at most ~400 points over ``span_s``: 1 s for short runs, at most
    60 s (the longest :func:`timeline` takes)."""
    for window in (1.0, 2.0, 5.0, 10.0, 15.0, 30.0):
        if span_s / window <= 400:
            return window
    return 60.0


# ---------------------------------------------------------------------------------- figures


def figure_png(fig: Figure, dpi: int = 96) -> bytes:
    """The figure as PNG bytes, rendered by the Agg canvas."""
    buffer = io.BytesIO()
    FigureCanvasAgg(fig)  # the figure's canvas from now on: Agg, whatever pyplot's backend
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def _figure(rows: int = 1, height: float = 3.0) -> tuple[Figure, list[Axes]]:
    fig = Figure(figsize=(11.0, height * rows), layout="constrained")
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False)
    return fig, [ax for (ax,) in axes]


def _plain_numbers(axis: Axis) -> None:
    """Ticks at 1, 2, 5, 10, 20, 50, ... labelled as plain numbers on a log axis."""
    axis.set_major_locator(LogLocator(base=10.0, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(NullFormatter())


def _x(tl: pd.DataFrame) -> pd.Series:
    """Window middles: a window's figures are plotted at its centre."""
    width = float(tl["t_s"].diff().median()) if len(tl) > 1 else 1.0
    x: pd.Series = tl["t_s"] + width / 2
    return x


def _over_time(
    ax: Axes,
    title: str,
    ylabel: str,
    origin: float,
    marks: pd.DataFrame,
) -> None:
    """Title, labels with units, the run's marks and the legend (outside, right); the
    x label under the lowest axes of the figure only."""
    ax.set(title=title, ylabel=ylabel)
    spec = ax.get_subplotspec()
    if spec is None or spec.is_last_row():
        ax.set_xlabel("time since the first request (s)")
    _mark(ax, origin, marks)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")


def _mark(ax: Axes, origin: float, marks: pd.DataFrame) -> None:
    """Stages as dotted lines, aborts as a red line, storms, mass logouts and fault windows
    as shaded spans (each kind in the legend once); times relative to ``origin``."""
    seen: set[str] = set()
    for kind, start, end in zip(
        marks["kind"].astype(str), marks["start"].astype(float), marks["end"].astype(float),
        strict=True,
    ):  # fmt: skip
        x0, x1 = start - origin, end - origin
        label = "_nolegend_" if kind in seen else kind.replace("_", " ")
        seen.add(kind)
        colour = _SPAN_COLOURS.get(kind, "#bf8700")
        if kind == "stage":
            ax.axvline(x0, color="#8c959f", linestyle=":", linewidth=1, label=label)
        elif kind == "abort":
            ax.axvline(x0, color="#cf222e", linewidth=1.5, label=label)
        elif x1 > x0:
            ax.axvspan(x0, x1, color=colour, alpha=0.15, label=label)
        else:
            ax.axvline(x0, color=colour, linewidth=1.5, label=label)


def throughput_latency_figure(tl: pd.DataFrame, origin: float, marks: pd.DataFrame) -> Figure:
    """Requests/s and goodput over time above p50/p95/p99 latency (ms, log scale), from a
    :func:`~authload.analysis.timeline.timeline` started at ``origin``."""
    fig, (top, bottom) = _figure(rows=2)
    x = _x(tl)
    top.plot(x, tl["rate"], color="#0969da", label="requests/s")
    top.plot(x, tl["goodput"], color="#2da44e", label="goodput (2xx/s)")
    top.set_ylim(bottom=0)
    for name, colour in (("p50", "#2da44e"), ("p95", "#bf8700"), ("p99", "#cf222e")):
        bottom.plot(x, tl[name], color=colour, label=name)
    if tl[["p50", "p95", "p99"]].gt(0).any().any():
        bottom.set_yscale("log")
        _plain_numbers(bottom.yaxis)
    _over_time(top, "Throughput over time", "requests/s", origin, marks)
    _over_time(bottom, "Latency percentiles over time", "latency (ms, log)", origin, marks)
    return fig


def status_figure(tl: pd.DataFrame, origin: float, marks: pd.DataFrame) -> Figure:
    """Answers per second by status class, stacked: 2xx, 4xx, 429, 5xx, 503, no answer."""
    fig, (ax,) = _figure(height=3.5)
    width = float(tl["t_s"].diff().median()) if len(tl) > 1 else 1.0
    bands = tl.assign(s4xx_other=tl["s4xx"] - tl["s429"], s5xx_other=tl["s5xx"] - tl["s503"])
    ax.stackplot(
        _x(tl),
        *[bands[column] / width for _, column, _ in _STATUS_BANDS],
        labels=[label for label, _, _ in _STATUS_BANDS],
        colors=[colour for _, _, colour in _STATUS_BANDS],
        alpha=0.85,
    )
    _over_time(ax, "Responses by status over time", "responses/s", origin, marks)
    return fig


def spectrum_figure(spectra: Mapping[str, pd.DataFrame]) -> Figure:
    """Latency by percentile (:func:`~authload.analysis.errors.latency_spectrum`),
    HdrHistogram style: x is 1/(1-p) on a log scale, so each further nine of the tail gets
    the same width."""
    fig, (ax,) = _figure(height=3.8)
    widest = 2.0
    for name, spectrum in spectra.items():
        p = spectrum["percentile"].to_numpy(dtype=float) / 100.0
        keep = p < 1.0
        x = 1.0 / (1.0 - p[keep])
        if len(x):
            widest = max(widest, float(x.max()))
            ax.step(x, spectrum["latency_ms"].to_numpy(dtype=float)[keep], where="post", label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    _plain_numbers(ax.yaxis)
    ticks = [q for q in _SPECTRUM_TICKS if 1.0 / (1.0 - q) <= widest * 1.01]
    ax.set_xticks([1.0 / (1.0 - q) for q in ticks], [f"{q * 100:g}%" for q in ticks])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlim(1.0, widest * 1.2)
    ax.set(title="Latency by percentile", xlabel="percentile", ylabel="latency (ms, log)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    return fig


def amplification_figure(tl: pd.DataFrame, origin: float, marks: pd.DataFrame) -> Figure:
    """Attempts per logical operation over time (1 = no retries)."""
    fig, (ax,) = _figure()
    ax.plot(_x(tl), tl["attempts_per_op"], color="#8250df", label="attempts per operation")
    ax.axhline(1.0, color="#8c959f", linewidth=0.8)
    ax.set_ylim(0.95, max(1.25, float(tl["attempts_per_op"].max(skipna=True) or 1.0) * 1.05))
    title = "Retry amplification over time"
    _over_time(ax, title, "attempts per operation", origin, marks)
    return fig


def outcomes_figure(outcomes: Mapping[str, int]) -> Figure:
    """Journeys by outcome: completed green, sessions lost red, anything else amber."""
    fig, (ax,) = _figure(height=max(2.0, 0.3 * len(outcomes) + 1.0))
    names = sorted(outcomes, key=lambda k: outcomes[k])
    colours = [
        "#cf222e" if "lost" in n else "#2da44e" if n.endswith("completed") else "#bf8700"
        for n in names
    ]
    bars = ax.barh(names, [outcomes[n] for n in names], color=colours)
    ax.bar_label(bars, padding=3, fontsize="small")
    ax.set(title="Flow outcomes and sessions lost", xlabel="journeys")
    ax.tick_params(axis="y", labelsize="small")
    ax.grid(alpha=0.3, axis="x")
    return fig


# ------------------------------------------------------------------------------------- html


def _e(value: object) -> str:
    return html.escape(str(value))


def _num(value: Any, digits: int = 1, suffix: str = "") -> str:
    """A number for a table: integers as they are, others with ``digits`` decimals; None
    and NaN as ``-``; anything else as text."""
    if value is None or (isinstance(value, Real) and math.isnan(value)):
        return "-"
    if isinstance(value, bool) or not isinstance(value, Real):
        return str(value)
    if isinstance(value, Integral):
        return f"{int(value)}{suffix}"
    return f"{float(value):.{digits}f}{suffix}"


def _table(head: Sequence[str], rows: Iterable[Sequence[Any]], cls: str = "") -> str:
    """An HTML table; every cell is escaped. A cell given as ``(text, css_class)`` gets the
    class (classes come from this module, never from data)."""
    parts = [f'<table class="{cls}"><thead><tr>' if cls else "<table><thead><tr>"]
    parts += [f"<th>{_e(h)}</th>" for h in head]
    parts.append("</tr></thead><tbody>")
    for row in rows:
        cells = []
        for cell in row:
            text, css = cell if isinstance(cell, tuple) else (cell, "")
            cells.append(f'<td class="{css}">{_e(text)}</td>' if css else f"<td>{_e(text)}</td>")
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts.append("</tbody></table>")
    return "".join(parts)


def _frame(df: pd.DataFrame, digits: int = 2) -> str:
    if df.empty:
        return "<p class=note>none</p>"
    rows = [
        [", ".join(map(str, v)) if isinstance(v, list | tuple) else _num(v, digits) for v in row]
        for row in df.itertuples(index=False)
    ]
    return _table([str(c) for c in df.columns], rows)


def _pairs(data: Mapping[str, Any], digits: int = 3) -> str:
    return _table(["", "value"], [[k, _num(v, digits)] for k, v in _flat(data).items()], "kv")


def _flat(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in counts.items()) or "-"


def _pass(passed: bool) -> tuple[str, str]:
    return ("pass", "pass") if passed else ("FAIL", "fail")


def _slo_rows(slos: list[dict[str, Any]]) -> list[list[Any]]:
    rows = []
    for slo in slos:
        match = SLO_PATTERN.match(slo["slo"])
        stat = match["stat"] if match else ""
        unit = {"error_rate": "%", "rate": "/s"}.get(stat, " ms")
        digits = 3 if stat == "error_rate" else 1
        rows.append(
            [
                slo["slo"],
                _num(slo["value"], digits, unit),
                f"{match['op'] if match else ''} {_num(slo['threshold'], digits, unit)}",
                _pass(bool(slo["passed"])),
                slo["count"],
            ]
        )
    return rows


def _endpoint_rows(endpoints: Mapping[str, Mapping[str, Any]]) -> list[list[Any]]:
    stats = ("p50", "p90", "p95", "p99", "p99.9", "max")
    return [
        [name, row["count"], _num(row["rate_per_s"])]
        + [_num(row[s]) for s in stats]
        + [
            _num(row["error_rate"] * 100, 2, "%"),
            _counts(row["errors"]),
            _counts(row["statuses"]),
            row["retries"],
        ]
        for name, row in endpoints.items()
    ]


def _reconciliation(reconciliation: Mapping[str, Any]) -> str:
    endpoints: Mapping[str, Mapping[str, Any]] = reconciliation.get("endpoints", {})
    on_mock = any("mock" in r for r in endpoints.values())
    sources = "records, Locust and the mock" if on_mock else "records and Locust"
    status = (
        f'<p class="badge pass">request counts reconcile ({sources})</p>'
        if reconciliation.get("match")
        else f'<p class="badge fail">request counts do NOT reconcile ({sources})</p>'
    )
    rows = [
        [
            name,
            *(_num(r.get(k)) for k in ("records", "locust", "answered", "mock")),
            _pass(r["match"]),
        ]
        for name, r in endpoints.items()
    ]
    return status + _table(["endpoint", "records", "Locust", "answered", "mock", ""], rows)


def _img(title: str, fig: Figure) -> str:
    data = base64.b64encode(figure_png(fig)).decode("ascii")
    return (
        f'<figure><h3>{_e(title)}</h3><img alt="{_e(title)}" '
        f'src="data:image/png;base64,{data}"></figure>'
    )


def _plots(run: RunData) -> str:
    if run.records.empty:
        return "<p class=note>No requests were recorded: nothing to plot.</p>"
    origin, records = run.start_t, run.records
    window = window_for(run.end_t - origin)
    tl = timeline(records, window_s=window, start=origin)
    marks = run.marks()
    parts = [
        _img("Throughput and latency over time", throughput_latency_figure(tl, origin, marks)),
        _img("Responses by status over time", status_figure(tl, origin, marks)),
        _img("Latency by percentile", spectrum_figure(latency_spectra(records))),
        _img("Retry amplification over time", amplification_figure(tl, origin, marks)),
    ]
    outcomes = run.summary.get("outcomes") or {}
    if outcomes:
        parts.append(_img("Flow outcomes and sessions lost", outcomes_figure(outcomes)))
    return f"<p class=note>{_e(f'{window:g} s windows')}</p>" + "".join(parts)


def _details(run: RunData) -> str:
    """Open-model latency, retries, 5xx bursts, events and fault windows."""
    records = run.records
    parts = []
    if len(records) and run.open_model:
        parts.append("<h2>Measured vs from intended start (open model)</h2>")
        parts.append(_frame(latency_comparison(records).reset_index(), 1))
    if len(records):
        parts.append("<h2>Retries</h2>" + _pairs(retry_summary(records)))
        bursts = run.since_start(error_bursts(records, window_s=1.0), "start", "end")
        parts.append("<h2>5xx bursts</h2>" + _frame(bursts))
    lost = sessions_lost(run.events)
    if lost:
        parts.append("<h2>Sessions lost</h2>" + _pairs(lost))
    marks = run.marks()
    parts.append("<h2>Events and fault windows</h2>")
    parts.append(_frame(run.since_start(marks, "start", "end"), 1))
    if len(records) and marks["kind"].isin(RECOVERY_KINDS).any():
        recovery = recovery_times(records, marks)[["kind", "label", "event_end", "recovery_s"]]
        parts.append("<h2>Recovery after storms, mass logouts and faults</h2>")
        parts.append(_frame(run.since_start(recovery, "event_end"), 1))
    parts.append("<p class=note>times in seconds since the first request</p>")
    return "".join(parts)


def _run_table(manifest: Mapping[str, Any], summary: Mapping[str, Any]) -> str:
    scenario = manifest.get("scenario", {})
    info = {
        "scenario": scenario.get("name", summary.get("scenario")),
        "description": scenario.get("description", ""),
        "status": manifest.get("status"),
        "requests": summary.get("requests"),
        "duration (s)": _num(summary.get("duration_s")),
        "load model": scenario.get("load", {}).get("model"),
        "retry policy": scenario.get("retry", {}).get("policy"),
        "seed": manifest.get("seed"),
        "processes": manifest.get("processes"),
        "died": ", ".join(
            f"{d.get('worker')} (last record {d.get('last_record')})"
            for d in manifest.get("died") or []
        )
        or "-",
        "git revision": manifest.get("git_revision"),
        "versions": _counts(manifest.get("versions", {})),
    }
    return _table(["", ""], [[k, "-" if v is None else v] for k, v in info.items()], "kv")


_PAGE = string.Template("""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title</title>
<style>
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1f2328;
max-width:1100px;margin:24px auto;padding:0 16px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;
border-bottom:1px solid #d0d7de;padding-bottom:4px}h3{font-size:15px;margin:16px 0 4px}
.meta{color:#57606a;margin:0 0 12px}
.verdict{display:inline-block;font-size:34px;font-weight:700;color:#fff;
padding:6px 22px;border-radius:8px;letter-spacing:1px;background:$colour}
table{border-collapse:collapse;margin:6px 0;font-size:13px}
th,td{border:1px solid #d0d7de;padding:3px 8px;text-align:right;vertical-align:top}
th{background:#f6f8fa}td:first-child,th:first-child{text-align:left}
table.kv td:last-child{text-align:left}
td.pass{color:#1a7f37;font-weight:600}td.fail{color:#cf222e;font-weight:700}
.badge{display:inline-block;padding:2px 10px;border-radius:6px;font-weight:600}
.badge.pass{background:#dafbe1;color:#1a7f37}.badge.fail{background:#ffebe9;color:#cf222e}
.note{color:#57606a}figure{margin:8px 0}img{max-width:100%}
</style></head><body>
<h1>$title</h1>
<p class="meta">$meta</p>
<div class="verdict">$verdict</div>
<h2>SLOs</h2>$slos
<h2>Endpoints</h2>$endpoints
<h2>Reconciliation</h2>$reconciliation
<h2>Flow outcomes</h2>$outcomes
<h2>Plots</h2>$plots
$details
$drift
<h2>Run</h2>$run
</body></html>
""")


def render_report(run: RunData, drift: str | None = None) -> str:
    """The report of a run as one self-contained HTML page; ``drift``: its drift section
    if already made (:func:`~authload.analysis.drift.drift_section`)."""
    manifest, summary = run.manifest, run.summary
    verdict = str(summary.get("verdict", "error"))
    meta = (
        f"target {manifest.get('target', '?')} · start {manifest.get('start', '?')} · "
        f"end {manifest.get('end', '?')} · status {manifest.get('status', '?')}"
    )
    slos = summary.get("slos", [])
    outcomes = summary.get("outcomes", {})
    return _PAGE.substitute(
        title=_e(f"authload report: {summary.get('scenario', run.run_dir.name)}"),
        meta=_e(meta),
        colour=_VERDICT_COLOURS.get(verdict, "#9a6700"),
        verdict=_e(verdict.upper()),
        slos=_table(["SLO", "measured", "threshold", "result", "requests"], _slo_rows(slos))
        if slos
        else "<p class=note>the scenario sets no SLOs</p>",
        endpoints=_table(_ENDPOINT_HEAD, _endpoint_rows(summary.get("endpoints", {}))),
        reconciliation=_reconciliation(summary.get("reconciliation", {})),
        outcomes=_table(["outcome", "journeys"], sorted(outcomes.items()))
        if outcomes
        else "<p class=note>no flow outcomes recorded</p>",
        plots=_plots(run),
        details=_details(run),
        run=_run_table(manifest, summary),
        drift=_drift(run) if drift is None else drift,
    )


def _drift(run: RunData, keep: bool = False) -> str:
    """The drift section, for runs long enough; ``keep`` also puts it in summary.json."""
    from authload.analysis.drift import drift_section  # it imports this module

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


def _iso_t(value: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return None
