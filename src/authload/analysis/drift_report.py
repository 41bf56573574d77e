"""The drift section of the run report (and the drift kept in ``summary.json``): what
:mod:`authload.analysis.drift` found, as text, tables and plots."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from authload.analysis.drift import (
    LATENCY_METRICS,
    MB,
    Drift,
    LoadedRun,
    frame_rows,
    run_drift,
    usable_windows,
)
from authload.analysis.figures import new_figure, plain_numbers
from authload.analysis.page import escape, frame_table, img
from authload.rundir.summary import read_summary, write_summary

__all__ = ["drift_section"]


def drift_section(run: LoadedRun, keep: bool = False) -> str:
    """The report's drift section ('' for a run shorter than :data:`MIN_SPAN_S`). With
    ``keep``, the drift also goes into ``summary.json`` under ``drift``. Never raises: a
    failed analysis is shown in the section."""
    try:
        drift = run_drift(run)
        if drift is None:
            return ""
        if keep:
            _keep(run.run_dir, drift)
        return _section(drift)
    except Exception as exc:
        return f"<h2>Drift</h2><p class=note>drift analysis failed: {escape(repr(exc))}</p>"


def _keep(run_dir: Path, drift: Drift) -> None:
    summary = read_summary(run_dir)
    summary.drift = drift.to_dict()
    write_summary(run_dir, summary)


def _section(drift: Drift) -> str:
    findings = drift.findings
    harness = drift.harness_findings
    parts = [
        "<h2>Drift</h2>",
        "<p class=note>"
        + escape(
            f"{drift.span_s:.0f} s run, first {drift.warmup_s:.0f} s left out as warm-up, "
            f"{drift.window_s:g} s windows; a trend is flagged when its "
            f"{drift.thresholds.confidence:.0%} interval excludes zero and the change over "
            f"the run is at least {drift.thresholds.latency_relative:.0%} and "
            f"{drift.thresholds.latency_ms:g} ms (latency) or "
            f"{drift.thresholds.error_pp:g} pp (error rate)"
        )
        + "</p>",
        _list("Service", findings, "no drift flagged"),
        _list("Harness (the Locust processes)", harness, "no harness drift flagged"),
    ]
    if findings and harness:
        parts.append(
            "<p class=note>The harness drifted too: check its figures before blaming the "
            "service.</p>"
        )
    parts += [f"<p class=note>{escape(note)}</p>" for note in drift.notes]
    if len(drift.series):
        parts.append(img("Latency per window, with the fitted trends", _latency_figure(drift)))
    trends = drift.trends.drop(columns=["unit", "significant", "material"])
    parts.append("<h3>Trends (change over the run; slopes per hour)</h3>" + frame_table(trends))
    if len(drift.steps):
        parts.append("<h3>Steps in the window medians</h3>" + frame_table(drift.steps))
    if len(drift.budgets):
        parts.append(img("Error budget spent over time", _budget_figure(drift)))
        parts.append("<h3>Error budgets</h3>" + frame_table(drift.budgets))
    if len(drift.resources):
        parts.append(img("Locust processes: memory and CPU", _resources_figure(drift)))
        parts.append("<h3>Locust processes</h3>" + frame_table(drift.harness))
    return "".join(parts)


def _list(title: str, lines: list[str], none: str) -> str:
    if not lines:
        return f'<p><span class="badge pass">{escape(title)}: {escape(none)}</span></p>'
    items = "".join(f"<li>{escape(line)}</li>" for line in lines)
    return f'<p><span class="badge fail">{escape(title)}: drift flagged</span></p><ul>{items}</ul>'


def _latency_figure(drift: Drift) -> Figure:
    fig, axes = new_figure(rows=2)
    flagged = {
        (row["endpoint"], row["metric"]): row for row in frame_rows(drift.trends) if row["flagged"]
    }
    for ax, metric in zip(axes, LATENCY_METRICS, strict=True):
        for endpoint, group in drift.series.groupby("endpoint", sort=True):
            usable = usable_windows(group, metric, drift.thresholds)
            if usable.empty:
                continue
            (line,) = ax.plot(usable["t_s"], usable[metric], linewidth=1, label=str(endpoint))
            row = flagged.get((str(endpoint), metric))
            if row is not None:
                x0, x1 = float(usable["t_s"].min()), float(usable["t_s"].max())
                ax.plot(
                    [x0, x1],
                    [row["start"], row["end"]],
                    linestyle="--",
                    linewidth=2,
                    color=line.get_color(),
                    label=f"{endpoint} trend ({row['change']:+.0f} ms)",
                )
        if ax.has_data():
            ax.set_yscale("log")
            plain_numbers(ax.yaxis)
        ax.axvline(drift.warmup_s, color="#8c959f", linestyle=":", label="end of warm-up")
        ax.set(title=f"{metric} per {drift.window_s:g} s window", ylabel="latency (ms, log)")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    axes[-1].set_xlabel("time since the first request (s)")
    return fig


def _budget_figure(drift: Drift) -> Figure:
    fig, (ax,) = new_figure()
    for slo, group in drift.budget_series.groupby("slo", sort=False):
        ax.plot(group["t_s"], group["spent"] * 100, label=str(slo))
    ax.axhline(100, color="#cf222e", linewidth=1, label="budget of the run")
    ax.set(
        title="Error budget spent over time",
        xlabel="time since the first request (s)",
        ylabel="budget spent (%)",
    )
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    return fig


def _resources_figure(drift: Drift) -> Figure:
    fig, (memory, cpu) = new_figure(rows=2)
    for process, group in drift.resources.groupby("process", sort=True):
        measured = group[group["rss_bytes"].notna()]
        memory.plot(measured["t_s"], measured["rss_bytes"] / MB, marker=".", label=str(process))
        used = group[group["cpu_percent"].notna()]
        cpu.plot(used["t_s"], used["cpu_percent"], marker=".", label=str(process))
    cpu.axhline(drift.thresholds.cpu_saturated, color="#cf222e", linewidth=1, label="saturated")
    memory.set(title="Locust processes: memory", ylabel="RSS (MB)")
    cpu.set(
        title="Locust processes: CPU",
        ylabel="CPU (% of one core)",
        xlabel="time since the first request (s)",
    )
    for ax in (memory, cpu):
        ax.axvline(drift.warmup_s, color="#8c959f", linestyle=":", label="end of warm-up")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    return fig
