"""The run's plots, shared by the report and the notebooks.

Figures are drawn on :class:`~matplotlib.figure.Figure` objects rendered by the Agg canvas,
never through pyplot: drawing changes no global matplotlib state (backend, style, open
figures).
"""

from __future__ import annotations

import io
from collections.abc import Mapping

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, NullLocator

__all__ = [
    "amplification_figure",
    "figure_png",
    "new_figure",
    "outcomes_figure",
    "plain_numbers",
    "spectrum_figure",
    "status_figure",
    "throughput_latency_figure",
]

_SPAN_COLOURS = {"refresh_storm": "#0969da", "mass_logout": "#8250df", "fault": "#cf222e"}


_STATUS_BANDS = (  # label, column of timeline(), colour
    ("2xx", "ok", "#2da44e"),
    ("4xx (not 429)", "s4xx_other", "#bf8700"),
    ("429", "s429", "#fb8f44"),
    ("5xx (not 503)", "s5xx_other", "#a40e26"),
    ("503", "s503", "#ff8182"),
    ("no answer", "no_answer", "#57606a"),
)


_SPECTRUM_TICKS = (0.5, 0.9, 0.99, 0.999, 0.9999, 0.99999, 0.999999)


def figure_png(fig: Figure, dpi: int = 96) -> bytes:
    """The figure as PNG bytes, rendered by the Agg canvas."""
    buffer = io.BytesIO()
    FigureCanvasAgg(fig)  # the figure's canvas from now on: Agg, whatever pyplot's backend
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def new_figure(rows: int = 1, height: float = 3.0) -> tuple[Figure, list[Axes]]:
    fig = Figure(figsize=(11.0, height * rows), layout="constrained")
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False)
    return fig, [ax for (ax,) in axes]


def plain_numbers(axis: Axis) -> None:
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
    """Requests/s and goodput over time above p50/p95/p99 latency of the answered requests
    (ms, log scale), from a :func:`~authload.analysis.timeline.timeline` started at
    ``origin``."""
    fig, (top, bottom) = new_figure(rows=2)
    x = _x(tl)
    top.plot(x, tl["rate"], color="#0969da", label="requests/s")
    top.plot(x, tl["goodput"], color="#2da44e", label="goodput (2xx/s)")
    top.set_ylim(bottom=0)
    for name, colour in (("p50", "#2da44e"), ("p95", "#bf8700"), ("p99", "#cf222e")):
        bottom.plot(x, tl[name], color=colour, label=name)
    if tl[["p50", "p95", "p99"]].gt(0).any().any():
        bottom.set_yscale("log")
        plain_numbers(bottom.yaxis)
    _over_time(top, "Throughput over time", "requests/s", origin, marks)
    title = "Latency percentiles of answered requests over time"
    _over_time(bottom, title, "latency (ms, log)", origin, marks)
    return fig


def status_figure(tl: pd.DataFrame, origin: float, marks: pd.DataFrame) -> Figure:
    """Answers per second by status class, stacked: 2xx, 4xx, 429, 5xx, 503, no answer."""
    fig, (ax,) = new_figure(height=3.5)
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
    """Latency by percentile (:func:`~authload.analysis.resilience.latency_spectrum`),
    HdrHistogram style: x is 1/(1-p) on a log scale, so each further nine of the tail gets
    the same width."""
    fig, (ax,) = new_figure(height=3.8)
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
    plain_numbers(ax.yaxis)
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
    fig, (ax,) = new_figure()
    ax.plot(_x(tl), tl["attempts_per_op"], color="#8250df", label="attempts per operation")
    ax.axhline(1.0, color="#8c959f", linewidth=0.8)
    ax.set_ylim(0.95, max(1.25, float(tl["attempts_per_op"].max(skipna=True) or 1.0) * 1.05))
    title = "Retry amplification over time"
    _over_time(ax, title, "attempts per operation", origin, marks)
    return fig


def outcomes_figure(outcomes: Mapping[str, int]) -> Figure:
    """Journeys by outcome: completed green, sessions lost red, anything else amber."""
    fig, (ax,) = new_figure(height=max(2.0, 0.3 * len(outcomes) + 1.0))
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
