"""The capacity page: ``CAPACITY_DIR/capacity.html``, drawn from ``capacity.json`` alone.

The capacity first (with its bracket, the knee and the first SLO to break), then three plots
against the offered load (arrivals/s, or users for closed-model steps): throughput, p99 and
error rate, with the capacity, the first failing level and the knee marked; for closed
steps the Universal Scalability Law fit drawn over the throughput and its parameters in a
table labelled as a model; last, every step with a link to its own run report. Self-contained
like the run report (inline CSS, inline PNG), drawn on Agg figures, never through pyplot.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from authload.analysis.figures import plain_numbers
from authload.analysis.page import document, escape, img, num, table
from authload.capacity.usl import usl
from authload.rundir.capacity import CapacityDocument
from authload.rundir.files import CAPACITY_REPORT_FILE, REPORT_FILE
from authload.scenario.slo_grammar import parse_slo

__all__ = [
    "capacity_figures",
    "render_capacity_report",
    "write_capacity_report",
]

_PASS, _FAIL, _MODEL = "#1a7f37", "#cf222e", "#8250df"


def _points(data: CapacityDocument, key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(levels, values, passed) of the judged steps, by level; missing values as NaN."""
    steps = sorted(
        (s for s in data.steps if s.get("verdict") in ("pass", "fail")),
        key=lambda s: float(s["level"]),
    )
    levels = np.array([float(s["level"]) for s in steps])
    values = np.array([math.nan if s.get(key) is None else float(s[key]) for s in steps])
    passed = np.array([s["verdict"] == "pass" for s in steps], dtype=bool)
    return levels, values, passed


def _marks(ax: Axes, data: CapacityDocument) -> None:
    """The capacity (green), the first failing level (red, dotted) and the knee (purple)."""
    cap = data.capacity
    low, high = cap.bracket
    if low is not None:
        ax.axvline(low, color=_PASS, linewidth=1.8, label=f"capacity {low:.4g}")
    if high is not None:
        ax.axvline(high, color=_FAIL, linewidth=1.2, linestyle=":", label=f"first fail {high:.4g}")
    knee = data.knee
    if knee is not None:
        ax.axvline(
            knee["level"],
            color="#bf8700",
            linewidth=1.2,
            linestyle="--",
            label=f"knee {knee['level']:.4g}",
        )


def _scatter(ax: Axes, x: np.ndarray, y: np.ndarray, passed: np.ndarray, label: str) -> None:
    ax.plot(x, y, color="#0969da", linewidth=1.2, label=label)
    ax.scatter(x[passed], y[passed], color=_PASS, zorder=3, s=28, label="step passed")
    ax.scatter(x[~passed], y[~passed], color=_FAIL, marker="x", zorder=3, s=36, label="step failed")


def _thresholds(ax: Axes, slos: Sequence[str], stats: Sequence[str], scale: float = 1.0) -> None:
    """The SLO thresholds on these stats as dashed horizontal lines."""
    for slo in slos:
        spec = parse_slo(slo)
        if spec.stat not in stats:
            continue
        value = spec.threshold * scale
        ax.axhline(value, color="#57606a", linestyle="--", linewidth=0.9, label=f"SLO {slo}")


def _finish(ax: Axes, title: str, xlabel: str, ylabel: str) -> None:
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")


def capacity_figures(data: CapacityDocument) -> list[tuple[str, Figure]]:
    """The page's plots, titled: throughput, p99 and error rate against the offered load."""
    closed = data.mode == "closed"
    xlabel = "users (closed model)" if closed else "offered load (journey arrivals/s)"
    return [
        ("Throughput vs offered load", _throughput_figure(data, xlabel)),
        ("p99 latency vs offered load", _latency_figure(data, xlabel)),
        ("Error rate vs offered load", _errors_figure(data, xlabel)),
    ]


def _throughput_figure(data: CapacityDocument, xlabel: str) -> Figure:
    x, throughput, passed = _points(data, "throughput_rps")
    _, ok, _ = _points(data, "ok_rps")
    fig = Figure(figsize=(11.0, 3.6), layout="constrained")
    ax = fig.subplots()
    ax.plot(x, throughput, color="#8c959f", linewidth=1, label="requests/s (all answers)")
    _scatter(ax, x, ok, passed, "ok requests/s (no error)")
    if len(x) and x[0] > 0 and ok[0] > 0:  # the ideal, up to a little above what was seen
        slope = ok[0] / x[0]
        end = min(float(x.max()), 1.3 * float(np.nanmax(throughput)) / slope)
        ax.plot(
            [0, end],
            [0, end * slope],
            color="#8c959f",
            linestyle=":",
            linewidth=1,
            label="proportional to the first step",
        )
    model = data.usl
    if data.mode == "closed" and model and "error" not in model:
        _usl_curve(ax, model, float(x.max()) if len(x) else 1.0)
    ax.set_ylim(bottom=0)
    _marks(ax, data)
    _finish(ax, "Throughput vs offered load", xlabel, "requests/s")
    return fig


def _usl_curve(ax: Axes, model: Mapping[str, Any], top: float) -> None:
    """The fitted model over the steps and beyond them (past its peak, when it has one)."""
    peak = model.get("n_peak")
    reach = max(top * 1.5, min(peak * 1.3, top * 10) if peak else 0.0)
    n = np.linspace(1.0, reach, 200)
    ax.plot(
        n,
        usl(n, model["lam"], model["sigma"], model["kappa"]),
        color=_MODEL,
        linestyle="--",
        label="USL model (fit; beyond the steps: extrapolated)",
    )
    if peak:
        ax.axvline(
            peak, color=_MODEL, linewidth=0.8, linestyle=":", label=f"model peak N* {peak:.3g}"
        )


def _latency_figure(data: CapacityDocument, xlabel: str) -> Figure:
    x, p99, passed = _points(data, "p99_ms")
    _, p50, _ = _points(data, "p50_ms")
    fig = Figure(figsize=(11.0, 3.6), layout="constrained")
    ax = fig.subplots()
    ax.plot(x, p50, color="#8c959f", linewidth=1, label="p50")
    _scatter(ax, x, p99, passed, "p99")
    _thresholds(ax, data.slos, ("p90", "p95", "p99", "p99.9", "max"))
    if np.nanmax(np.append(p99, 0.0)) > 0:
        ax.set_yscale("log")
        plain_numbers(ax.yaxis)
    _marks(ax, data)
    _finish(ax, "p99 latency vs offered load", xlabel, "latency (ms, log)")
    return fig


def _errors_figure(data: CapacityDocument, xlabel: str) -> Figure:
    x, errors, passed = _points(data, "error_rate")
    fig = Figure(figsize=(11.0, 3.0), layout="constrained")
    ax = fig.subplots()
    _scatter(ax, x, errors * 100.0, passed, "error rate")
    _thresholds(ax, data.slos, ("error_rate",))
    ax.set_ylim(bottom=0)
    _marks(ax, data)
    _finish(ax, "Error rate vs offered load", xlabel, "requests with an error (%)")
    return fig


def _summary(data: CapacityDocument) -> str:
    cap, unit = data.capacity, data.unit
    low, high = cap.bracket
    knee, breach = data.knee, data.first_breach
    rows: list[list[Any]] = [
        ["capacity", cap.note],
        ["bracket", f"last pass {_g(low)}, first fail {_g(high)} ({unit})"],
        ["ok requests/s at capacity", num(cap.ok_rps, 1)],
        ["p99 at capacity (ms)", num(cap.p99_ms, 1)],
        [
            "stopped",
            data.stop_reason + (f": {data.stop_detail}" if data.stop_detail else ""),
        ],
        [
            "knee",
            "none in the tested range"
            if knee is None
            else f"{knee['level']:.4g} {unit}: latency climbed faster than throughput from "
            f"there to {knee['next_level']:.4g} (elasticity "
            f"{num(knee['elasticity'], 2) if knee['elasticity'] is not None else 'inf'})",
        ],
    ]
    if breach is not None:
        what = (
            "; ".join(breach["reasons"])
            if breach["slo"] is None
            else f"{breach['slo']} on {breach['endpoint']} (measured {_g(breach['value'])})"
        )
        rows.append(["first to break", f"at {breach['level']:.4g} {unit}: {what}"])
    rows.append(["SLOs", "; ".join(data.slos) or "none"])
    settings = data.settings
    rows.append(["settings", ", ".join(f"{k} {v}" for k, v in settings.items() if v is not None)])
    return table(["", ""], rows, "kv")


def _g(value: Any, digits: int = 4) -> str:
    """``digits`` significant digits, ``-`` for none."""
    return "-" if value is None else f"{value:.{digits}g}"


def _usl_table(model: Mapping[str, Any] | None) -> str:
    if model is None:
        return ""
    head = "<h2>Scalability model (Universal Scalability Law fit)</h2>"
    if "error" in model:
        return head + f"<p class=note>not fitted: {escape(model['error'])}</p>"
    rows = [
        [
            name,
            _g(model[key]),
            _g(model[f"{key}_se"], 2),
            f"{_g(model[f'{key}_ci'][0])} .. {_g(model[f'{key}_ci'][1])}",
        ]
        for name, key in (
            ("lambda (ok req/s of one user)", "lam"),
            ("sigma (contention)", "sigma"),
            ("kappa (coherency)", "kappa"),
        )
    ]
    peak = model.get("n_peak")
    rows += [
        [
            "peak N* = sqrt((1 - sigma) / kappa) (users)",
            _g(peak, 3) if peak else "none (kappa 0)",
            _g(model.get("n_peak_se"), 2),
            "",
        ],
        ["X(N*) (ok req/s)", _g(model.get("x_peak")), "", ""],
        ["R²", num(model["r2"], 4), "", ""],
        ["points", model["points"], "", ""],
    ]
    return (
        head
        + "<p class=note>X(N) = lambda N / (1 + sigma (N - 1) + kappa N (N - 1)) fitted to the "
        "steps' ok throughput by least squares. A model of what was measured: beyond the "
        "highest step it is an extrapolation, to be checked by measuring.</p>"
        + table(["parameter", "estimate", "std error", "95% interval"], rows)
    )


def _steps(data: CapacityDocument, directory: Path | None) -> str:
    head = (
        "step",
        data.unit,
        "chosen by",
        "verdict",
        "req/s",
        "ok/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "errors",
        "why",
        "run",
    )
    parts = ["<table><thead><tr>", *(f"<th>{escape(h)}</th>" for h in head), "</tr></thead><tbody>"]
    for s in data.steps:
        verdict = str(s.get("verdict", ""))
        css = "pass" if verdict == "pass" else "fail"
        report = f"{s['run_dir']}/{REPORT_FILE}"
        exists = directory is None or (directory / report).is_file()
        link = (
            f'<a href="{escape(report)}">{escape(s["run_dir"])}</a>'
            if exists
            else escape(s["run_dir"])
        )
        error_rate = s.get("error_rate")
        cells = [
            escape(s["index"]),
            escape(f"{s['level']:.4g}"),
            escape(str(s["chosen_by"]).replace("_", " ")),
            f'<span class="{css}">{escape(verdict.upper())}</span>',
            *(
                escape(num(s.get(k), 1))
                for k in ("throughput_rps", "ok_rps", "p50_ms", "p95_ms", "p99_ms")
            ),
            escape("-" if error_rate is None else f"{error_rate * 100:.2f}%"),
            escape("; ".join(s.get("reasons", [])) or "-"),
            link,
        ]
        parts.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    parts.append("</tbody></table>")
    return "".join(parts)


def render_capacity_report(data: CapacityDocument, directory: Path | None = None) -> str:
    """The capacity page as one self-contained HTML string."""
    cap, unit = data.capacity, data.unit
    level = cap.level
    if data.status in ("aborted", "error"):
        headline, colour = data.status.upper(), "#9a6700"
    elif level is None and cap.bracket[1] is not None:
        headline, colour = f"BELOW {cap.bracket[1]:.4g} {unit}", _FAIL
    elif level is None:
        headline, colour = "NO CAPACITY JUDGED", "#9a6700"
    else:
        at_least = "" if cap.bounded else "AT LEAST "
        headline, colour = f"{at_least}{level:.4g} {unit}", _PASS if cap.bounded else "#9a6700"
    judged = [s for s in data.steps if s.get("verdict") in ("pass", "fail")]
    plots = (
        "".join(img(title, fig) for title, fig in capacity_figures(data))
        if judged
        else "<p class=note>no step was judged: nothing to plot</p>"
    )
    meta = (
        f"{data.mode} model · target {data.target} · start {data.start} · "
        f"end {data.end} · status {data.status} · {data.elapsed_s:.0f} s · "
        f"{len(data.steps)} steps"
    )
    body = "".join(
        [
            f"<h2>Capacity</h2>{_summary(data)}",
            f"<h2>Against the offered load</h2>{plots}",
            _usl_table(data.usl),
            "<h2>Steps</h2><p class=note>Each step is a run directory of its own (its report "
            "judges the whole step; the verdict here is the measured window's, warm-up "
            "excluded).</p>",
            _steps(data, directory),
        ]
    )
    return document(f"authload capacity: {data.scenario}", meta, headline, colour, body)


def write_capacity_report(directory: Path, data: CapacityDocument) -> Path:
    """Write ``directory/capacity.html`` from ``data`` (capacity.json's content)."""
    path = directory / CAPACITY_REPORT_FILE
    partial = path.with_name(f".{CAPACITY_REPORT_FILE}.partial")
    try:
        partial.write_text(render_capacity_report(data, directory), encoding="utf-8")
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return path
