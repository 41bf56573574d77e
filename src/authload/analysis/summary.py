"""The run's summary.json: per-endpoint figures, journeys per flow, revocation times, SLO
results, the default gates, flow outcomes, the count reconciliation (records, Locust, mock)
and the verdict."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

from authload.analysis.drift import Thresholds, read_resources
from authload.analysis.gates import RunFacts, check_gates, verdict
from authload.analysis.journeys import journey_summary, revocation_summary
from authload.analysis.offered import open_model_limit
from authload.analysis.query import ANSWERED, Journeys, Records, RecordsLike, as_records
from authload.analysis.slo import evaluate_slos
from authload.analysis.stats import endpoint_summary
from authload.rundir.events import Event, OutcomesEvent, of_kind
from authload.rundir.files import LOCUST_COUNTS_DIR, MANIFEST_FILE, MOCK_STATS_FILE
from authload.rundir.jsonfiles import read_json
from authload.rundir.manifest import DiedProcess, Status, read_manifest
from authload.rundir.summary import Reconciled, ReconciledCounts, SloOutcome, Summary
from authload.scenario.model import Scenario


def summarize(run_dir: Path, scenario: Scenario, status: Status, events: list[Event]) -> Summary:
    """The run's summary; ``events``: its ``events.jsonl``, which the caller has read once
    for everything the end of a run needs (:func:`authload.rundir.events.read_events`)."""
    records = Records.of_run(run_dir)
    journeys = Journeys.of_run(run_dir)
    mock = _mock_stats(run_dir)
    span = _span_s(records)
    endpoints = endpoint_summary(records, span)
    slos = evaluate_slos(scenario.slos, records, span, journeys, endpoints)
    reconciliation = reconcile(run_dir, records, mock)
    facts = RunFacts(journeys, reconciliation, _died(run_dir), mock, events, scenario.load)
    gates = check_gates(facts, list(scenario.gates_off))
    return Summary(
        scenario=scenario.name,
        status=status,
        verdict=verdict(status, len(records), all(s.passed for s in slos), gates),
        duration_s=span,
        requests=len(records),
        endpoints=endpoints,
        journeys=journey_summary(journeys),
        revocation=revocation_summary(journeys),
        slos=[SloOutcome(**{**vars(s), "value": _measured(s.value)}) for s in slos],
        gates=gates,
        outcomes=_outcomes(events),
        reconciliation=reconciliation,
        mock_sessions_evicted=mock_sessions_evicted(mock),
        mock_families_revoked=_event_count(mock, "families_revoked"),
        open_model_limit=_open_model_limit(run_dir, scenario, journeys),
    )


def _measured(value: float) -> float | None:
    return None if math.isnan(value) else value


def _open_model_limit(run_dir: Path, scenario: Scenario, journeys: Journeys) -> str | None:
    resources = read_resources(run_dir)
    return open_model_limit(scenario.load, journeys, resources, Thresholds().cpu_saturated)


def _event_count(mock: dict[str, Any] | None, key: str) -> int | None:
    """One of the mock's counters over the run; None when the target was no mock."""
    return None if mock is None else int(mock.get("events", {}).get(key, 0))


def _died(run_dir: Path) -> list[DiedProcess]:
    """The Locust processes the manifest names as dead."""
    if not (run_dir / MANIFEST_FILE).is_file():
        return []
    return read_manifest(run_dir).died


EVICTED = "sessions_evicted."  # /_mock/stats events: sessions_evicted.<api>


def _mock_stats(run_dir: Path) -> dict[str, Any] | None:
    """The mock's counters over the run; None when the target was no mock."""
    path = run_dir / MOCK_STATS_FILE
    if not path.is_file():
        return None
    stats: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return stats


def mock_sessions_evicted(mock: dict[str, Any] | None) -> dict[str, int] | None:
    """Sessions the mock ended over the run because an account went past its cap of live
    sessions (``max_sessions_per_account``), per API; None when the target was no mock.

    The API does not know such a cap: a journey that kept an evicted session finds its token
    refused and counts the session lost, so these losses are the mock's, not the service's.
    """
    if mock is None:
        return None
    events = mock.get("events", {})
    return {
        key.removeprefix(EVICTED): int(n)
        for key, n in sorted(events.items())
        if key.startswith(EVICTED) and n > 0
    }


def summary_notes(summary: Summary) -> list[str]:
    """What a person must read beside the verdict: the mock's own doing (evicted sessions,
    families revoked) and what limited an open-model run."""
    families = summary.mock_families_revoked
    notes = [
        eviction_note(summary.mock_sessions_evicted),
        summary.open_model_limit,
        None
        if not families
        else (
            f"the mock ended {families} sessions whose rotated refresh token was reused "
            f"(reuse_revokes_family): their journeys count them lost (session_lost:invalid)"
        ),
    ]
    return [n for n in notes if n]


def eviction_note(evicted: dict[str, int] | None) -> str | None:
    """What a person must know when the mock evicted sessions during the run."""
    if not evicted:
        return None
    counts = ", ".join(f"{n} {api}" for api, n in evicted.items())
    return (
        f"the mock evicted sessions over its per-account cap ({counts}): journeys that kept "
        f"them count them lost (session_lost:invalid, token_lost), the mock's doing, not the "
        f"service's; give the scenario more accounts or raise the mock's "
        f"max_sessions_per_account"
    )


def _span_s(records: Records) -> float:
    """From the first attempt's start to the last one's end (s)."""
    row = records.row("SELECT max(t + latency_ms / 1000.0) - min(t) AS span FROM {records}")
    span = row.get("span")
    return 0.0 if span is None or math.isnan(span) else float(span)  # NULL (NaN): no records


def _outcomes(events: list[Event]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for event in of_kind(events, OutcomesEvent):
        total.update(event.counts)
    return dict(sorted(total.items()))


def reconcile(
    run_dir: Path, records: RecordsLike, mock_stats: dict[str, Any] | None
) -> ReconciledCounts:
    """Request counts per endpoint as the records, Locust and (on the mock) the mock saw them.

    Records and Locust count every attempt; the mock counts the requests it answered, so it is
    compared with the records that got an HTTP status.
    """
    counts = as_records(records).sql(
        f"SELECT endpoint, count(*) AS n, count(*) FILTER (WHERE {ANSWERED}) AS answered "
        "FROM {records} GROUP BY endpoint"
    )
    names = [str(name) for name in counts["endpoint"]]
    recorded = dict(zip(names, counts["n"].astype(int), strict=True))
    answered = dict(zip(names, counts["answered"].astype(int), strict=True))
    locust = _locust_counts(run_dir / LOCUST_COUNTS_DIR)
    mock = _mock_counts(mock_stats)
    rows = {}
    for name in sorted(set(recorded) | set(locust) | set(mock or {})):
        n, got = int(recorded.get(name, 0)), int(answered.get(name, 0))
        by_mock = None if mock is None else mock.get(name, 0)
        rows[name] = Reconciled(
            records=n,
            locust=locust.get(name),
            answered=got,
            mock=by_mock,
            match=locust.get(name) == n and (mock is None or by_mock == got),
        )
    return ReconciledCounts(endpoints=rows, match=all(r.match for r in rows.values()))


def _locust_counts(directory: Path) -> dict[str, int]:
    """Locust's request counts, summed over its processes."""
    total: Counter[str] = Counter()
    for path in sorted(directory.glob("*.json")):
        total.update(read_json(path))
    return dict(total)


def _mock_counts(stats: dict[str, Any] | None) -> dict[str, int] | None:
    if stats is None:
        return None
    return {name: sum(by_status.values()) for name, by_status in stats["requests"].items()}
