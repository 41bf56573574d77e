"""Run analysis with pandas: summaries, SLOs, timelines, errors and recovery, drift over a
long run, and the history of runs. No printing; the CLI prints."""

from authload.analysis.drift import Drift, analyze_drift, read_resources
from authload.analysis.history import RunEntry, RunIndex, compare_latest, index_runs
from authload.analysis.resilience import (
    RecoveryTolerance,
    error_bursts,
    latency_comparison,
    latency_from_intended,
    latency_spectrum,
    recovery_times,
    retry_after_honoured,
    retry_summary,
    sessions_lost,
    shedding_quality,
)
from authload.analysis.slo import SloResult, evaluate_slos
from authload.analysis.stats import PERCENTILES, endpoint_summary, load_records, percentile
from authload.analysis.timeline import event_windows, fault_windows, timeline

__all__ = [
    "PERCENTILES",
    "Drift",
    "RecoveryTolerance",
    "RunEntry",
    "RunIndex",
    "SloResult",
    "analyze_drift",
    "compare_latest",
    "endpoint_summary",
    "error_bursts",
    "evaluate_slos",
    "event_windows",
    "fault_windows",
    "index_runs",
    "latency_comparison",
    "latency_from_intended",
    "latency_spectrum",
    "load_records",
    "percentile",
    "read_resources",
    "recovery_times",
    "retry_after_honoured",
    "retry_summary",
    "sessions_lost",
    "shedding_quality",
    "timeline",
]
