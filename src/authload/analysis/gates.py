"""The default gates: what judges every run whether or not its scenario wrote an SLO.

Each gate is one class with one call shape, ``check(facts)``, its outcome a
:class:`~authload.rundir.summary.GateOutcome`. A gate's
severity says what its failure means: ``fail``, the service did something a release must not
ship (a revoked or rotated token still accepted); ``invalid``, the run's own figures cannot be
trusted (counts that do not reconcile, a Locust process that died). A scenario turns a gate
off only by naming it in ``gates_off``; a gate that is off is still reported.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from authload.analysis.journeys import revocation_summary
from authload.analysis.offered import shortfalls
from authload.analysis.query import Journeys
from authload.rundir.events import Event
from authload.rundir.manifest import DiedProcess, Status
from authload.rundir.summary import GateOutcome, ReconciledCounts, Verdict
from authload.scenario.model import Load

FAIL, INVALID = "fail", "invalid"
STALE_ACCEPTED = "stale_accepted."  # /_mock/stats events: stale_accepted.<api>


@dataclass(frozen=True)
class RunFacts:
    """What the gates read: the run's journeys, its count reconciliation, the processes that
    died (manifest), its events and planned load and, on a mock, the mock's counters."""

    journeys: Journeys
    reconciliation: ReconciledCounts
    died: list[DiedProcess]
    mock_stats: dict[str, Any] | None
    events: list[Event] = field(default_factory=list)
    load: Load | None = None


class Gate(ABC):
    """One default gate: ``check`` says whether the run passed it, the value counted, and
    the evidence."""

    name: ClassVar[str]
    severity: ClassVar[str]

    @abstractmethod
    def check(self, facts: RunFacts) -> tuple[bool, float | None, str]: ...


class RevokedTokenAccepted(Gate):
    """A token a logout from all devices revoked was still accepted by ``gigma.logout``."""

    name = "revoked_token_accepted"
    severity = FAIL

    def check(self, facts: RunFacts) -> tuple[bool, float | None, str]:
        summary = revocation_summary(facts.journeys)
        if summary is None:
            return True, 0, "no logout from all devices in this run"
        accepted = summary["accepted_after_revocation"]
        if not accepted:
            return True, 0, f"gigma.logout: all {summary['tokens']} revoked tokens refused"
        return (
            False,
            accepted,
            f"gigma.logout accepted {accepted} of {summary['tokens']} tokens after a logout "
            f"from all devices revoked them ({summary['never_refused']} never refused within "
            f"the check's bound), first at {_iso(summary['first_accepted_t'])}; revocation "
            f"p99 {summary['p99']:.0f} ms",
        )


class RotatedTokenAccepted(Gate):
    """The mock accepted a rotated refresh token its model says must be refused (a stale
    view of the rotation): only a mock can tell; elsewhere the gate has nothing to judge. (A
    revoked access token still accepted is :class:`RevokedTokenAccepted`'s, seen by the
    journeys themselves.)"""

    name = "rotated_token_accepted"
    severity = FAIL

    def check(self, facts: RunFacts) -> tuple[bool, float | None, str]:
        if facts.mock_stats is None:
            return True, None, "only a mock target can tell (not a mock)"
        accepted = int(facts.mock_stats.get("events", {}).get(f"{STALE_ACCEPTED}mobile", 0))
        if not accepted:
            return True, 0, "mobile.refresh: the mock refused every rotated refresh token"
        return (
            False,
            accepted,
            f"mobile.refresh accepted {accepted} rotated refresh tokens the mock's model says "
            f"must be refused (a stale view of the rotation)",
        )


class Reconciliation(Gate):
    """Every attempt counted the same by the records, Locust and (on a mock) the mock."""

    name = "reconciliation"
    severity = INVALID

    def check(self, facts: RunFacts) -> tuple[bool, float | None, str]:
        rows = facts.reconciliation.endpoints
        off = {name: row for name, row in rows.items() if not row.match}
        if not off:
            return True, 0, f"{len(rows)} endpoints: records, Locust and mock agree"
        detail = "; ".join(
            f"{name}: records {r.records}, Locust {r.locust}"
            + (f", answered {r.answered}, mock {r.mock}" if r.mock is not None else "")
            for name, r in sorted(off.items())
        )
        return False, len(off), f"counts do not reconcile on {len(off)} endpoints: {detail}"


class Processes(Gate):
    """Every Locust process that ran users lived to the end of the run."""

    name = "processes"
    severity = INVALID

    def check(self, facts: RunFacts) -> tuple[bool, float | None, str]:
        if not facts.died:
            return True, 0, "every Locust process lived to the end"
        detail = ", ".join(
            f"{d.worker} (last record {d.last_record or 'none'}"
            + (f", missing from {d.missing_at}" if d.missing_at else "")
            + ")"
            for d in facts.died
        )
        return False, len(facts.died), f"Locust processes died during the run: {detail}"


class LoadOffered(Gate):
    """The planned load was offered: each stage's users (closed model, once ramped up) or
    arrivals (open model, started or dropped: a dropped arrival is the service's finding,
    judged by ``dropped``; one never accounted for is the harness's loss)."""

    name = "load_offered"
    severity = INVALID

    def check(self, facts: RunFacts) -> tuple[bool, float | None, str]:
        if facts.load is None:
            return True, None, "no planned load to compare with"
        short = shortfalls(facts.load, facts.events, facts.journeys, facts.died)
        if not short:
            return True, 0, f"every stage's planned {_unit(facts.load)} offered"
        return False, len(short), "planned load not offered: " + "; ".join(short)


def _unit(load: Load) -> str:
    return "users" if load.model == "closed" else "arrivals"


GATES: tuple[Gate, ...] = (
    RevokedTokenAccepted(),
    RotatedTokenAccepted(),
    Reconciliation(),
    Processes(),
    LoadOffered(),
)
THRESHOLDS = {FAIL: "none accepted", INVALID: "none"}


def check_gates(facts: RunFacts, off: list[str]) -> list[GateOutcome]:
    results = []
    for gate in GATES:
        passed, value, evidence = gate.check(facts)
        enabled = gate.name not in off
        results.append(
            GateOutcome(
                gate=gate.name,
                severity=gate.severity,
                enabled=enabled,
                passed=passed,
                value=value,
                threshold=THRESHOLDS[gate.severity],
                evidence=evidence,
            )
        )
    return results


def verdict(status: Status, requests: int, slos_passed: bool, gates: list[GateOutcome]) -> Verdict:
    """``aborted``/``error`` as the run ended; else a failed ``fail`` gate -> ``fail``, a
    failed ``invalid`` gate -> ``invalid`` (the figures cannot be trusted, so neither can a
    pass or fail of the SLOs), else the SLOs decide."""
    if status in ("aborted", "error", "incomplete"):
        return status
    if requests == 0:
        return "error"
    failed = {g.severity for g in gates if g.enabled and not g.passed}
    if FAIL in failed:
        return "fail"
    if INVALID in failed:
        return "invalid"
    return "pass" if slos_passed else "fail"


def _iso(t: float | None) -> str:
    if t is None:
        return "-"
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")
