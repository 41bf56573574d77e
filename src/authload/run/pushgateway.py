"""Push a finished run's figures to a Prometheus Pushgateway.

A run too short to be scraped, or one whose exporters are gone, still leaves its figures in
Prometheus this way; the soak-trends dashboard reads them across runs. The figures are the
exact ones of the run directory (``summary.json``, ``manifest.json``), computed from the
records, never from the live metrics. One group per run: ``job="authload_runs"``,
``scenario`` and ``run`` (the run directory's name); pushing a run again replaces its group.
Names come from :mod:`authload.metric_names`:

- ``authload_run_requests{endpoint, status}``: attempts in the run (status 0: no answer);
- ``authload_run_latency_seconds{endpoint, quantile}``: the exact p50 ... p99.9 (quantile
  0.5 ... 0.999) and max (quantile 1) of every attempt (an unanswered one: until it
  failed); ``endpoint="*"``: all;
- ``authload_run_error_ratio{endpoint}``: failed attempts / attempts; ``*``: all;
- ``authload_run_duration_seconds``: first attempt to last answer;
- ``authload_run_verdict``: 1 pass, 0 otherwise (an SLO failed, aborted, error);
- ``authload_run_finished_timestamp_seconds``: when the run ended (unix time).

Where: ``authload run --pushgateway URL`` or ``AUTHLOAD_PUSHGATEWAY=host:port`` (the flag
wins); a URL without a scheme is http. A failed push is a warning, never a failed run.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

from authload import metric_names as names
from authload.run.console import Console
from authload.rundir.files import MANIFEST_FILE
from authload.rundir.manifest import Manifest, read_manifest
from authload.rundir.summary import read_summary

__all__ = [
    "PUSHGATEWAY_ENV",
    "QUANTILES",
    "gateway_from_env",
    "push_after_run",
    "push_run",
    "run_grouping_key",
    "run_registry",
]

PUSHGATEWAY_ENV = "AUTHLOAD_PUSHGATEWAY"
TIMEOUT_S = 10.0
# summary.json's latency figures (ms) -> the quantile label
QUANTILES = {"p50": "0.5", "p90": "0.9", "p95": "0.95", "p99": "0.99", "p99.9": "0.999", "max": "1"}


def gateway_from_env() -> str | None:
    """The Pushgateway from ``AUTHLOAD_PUSHGATEWAY``; None when unset or empty."""
    return os.environ.get(PUSHGATEWAY_ENV, "").strip() or None


def run_grouping_key(run_dir: Path) -> dict[str, str]:
    """The run's group (besides ``job``): its scenario and its run id."""
    return {names.SCENARIO: read_summary(run_dir).scenario, names.RUN: run_dir.name}


def run_registry(run_dir: Path) -> CollectorRegistry:
    """A registry holding the run's figures, read from its run directory."""
    summary = read_summary(run_dir)
    manifest = read_manifest(run_dir) if (run_dir / MANIFEST_FILE).is_file() else None
    r = CollectorRegistry()
    requests = Gauge(
        names.PUSHED_REQUESTS,
        "Attempts in the run, by status (0 = no answer)",
        [names.ENDPOINT, names.STATUS],
        registry=r,
    )
    latency = Gauge(
        names.PUSHED_LATENCY,
        "Exact latency percentiles of the run's attempts (quantile 1: max)",
        [names.ENDPOINT, names.QUANTILE],
        registry=r,
    )
    error_ratio = Gauge(
        names.PUSHED_ERROR_RATIO,
        "Failed attempts over attempts in the run",
        [names.ENDPOINT],
        registry=r,
    )
    for endpoint, row in summary.endpoints.items():
        if endpoint != "*":  # the per-endpoint counts add up to it
            for status, count in row["statuses"].items():
                requests.labels(endpoint, str(status)).set(count)
        for key, quantile in QUANTILES.items():
            if row.get(key) is not None:
                latency.labels(endpoint, quantile).set(row[key] / 1000.0)
        error_ratio.labels(endpoint).set(row["error_rate"])
    Gauge(names.PUSHED_DURATION, "Length of the run: first attempt to last answer", registry=r).set(
        summary.duration_s
    )
    Gauge(names.PUSHED_VERDICT, "1 when the run passed, else 0", registry=r).set(
        1 if summary.verdict == "pass" else 0
    )
    Gauge(names.PUSHED_FINISHED, "Unix time the run ended", registry=r).set(_end(manifest))
    return r


def _end(manifest: Manifest | None) -> float:
    end = None if manifest is None else manifest.ended_at()
    return time.time() if end is None else end.timestamp()


def push_run(run_dir: Path, gateway: str, timeout: float = TIMEOUT_S) -> None:
    """Push the run's figures to ``gateway`` (``host:port`` or a URL), replacing its group.
    Raises on failure (an OSError when the gateway cannot be reached or refuses)."""
    push_to_gateway(
        gateway,
        job=names.PUSH_JOB,
        registry=run_registry(run_dir),
        grouping_key=run_grouping_key(run_dir),
        timeout=timeout,
    )


def push_after_run(run_dir: Path, gateway: str | None, console: Console | None = None) -> bool:
    """Push when a gateway is configured (``gateway``, else ``AUTHLOAD_PUSHGATEWAY``); a
    failure is said as a warning and returns False, it never fails the run."""
    console = console or Console()
    gateway = gateway or gateway_from_env()
    if gateway is None:
        return False
    try:
        push_run(run_dir, gateway)
    except Exception as exc:  # a push must never fail the run
        console.say(f"warning: the run's figures were not pushed to {gateway}: {exc}")
        return False
    console.say(f"the run's figures pushed to {gateway}")
    return True
