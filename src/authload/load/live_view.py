"""The run so far, as the authload tab of Locust's web UI shows it and ``/authload/state``
serves it: the verdict so far, each SLO with its value now (:func:`run_state.slo_live`), the
default gates as far as they are known live, journeys per flow and their success, dropped
arrivals, sessions lost, and the mock's fault windows.

What is known only from the records (latencies of the expected answers, journey durations,
revocation times, the reconciliation of counts, the planned load offered once ramped up) is
said to be judged at the end: the verdict so far is the live estimate, the summary's is the
run's (Locust rounds its latencies; the records are exact).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from authload.load import live_counts
from authload.load.run_state import slo_live
from authload.load.shapes import stage_at
from authload.rundir.records import LOST_PREFIXES, journey_ok
from authload.scenario.slo_grammar import parse_slo

if TYPE_CHECKING:
    from authload.load.config import RunConfig
    from authload.load.mock_peek import MockView

AT_END = "at the end"
OK, FAILING = "ok so far", "FAILING"
REVOKED_OUTCOME = "revoked_token_accepted"
# the default gates (authload.analysis.gates.GATES), as far as the run so far tells
GATES = (
    ("revoked_token_accepted", "fail"),
    ("rotated_token_accepted", "fail"),
    ("reconciliation", "invalid"),
    ("processes", "invalid"),
    ("load_offered", "invalid"),
)


@dataclass
class UiRun:
    """What the UI has seen of the test: when it started and stopped, manual control."""

    from_runner: bool  # `authload run --ui`: the runner writes the report after Locust quits
    started: float | None = None
    stopped: float | None = None
    manual: list[dict[str, Any]] = field(default_factory=list)
    quitting: bool = False  # Locust's web UI is to quit


@dataclass(frozen=True)
class Moment:
    """The run's state at one instant, read from Locust."""

    state: str  # Locust's runner state
    users: int
    stats: Any  # Locust's RequestStats
    missing: list[str]  # workers Locust's master found missing
    processes: int
    now: float


def build(config: RunConfig, ui: UiRun, moment: Moment, mock: MockView | None) -> dict[str, Any]:
    """The live view as JSON-ready data."""
    scenario = config.scenario
    elapsed = _elapsed(ui, moment.now)
    counts = live_counts.totals()
    slos = [_slo(text, moment.stats, elapsed) for text in scenario.slos]
    gates = _gates(config, counts, moment, mock)
    return {
        "scenario": scenario.name,
        "run": config.run_dir.name,
        "target": config.target,
        "phase": _phase(ui, moment.state),
        "elapsed_s": elapsed,
        "duration_s": scenario.duration_s,
        "stage": _stage(config, elapsed),
        "users": moment.users,
        "requests": int(moment.stats.total.num_requests),
        "verdict_so_far": _verdict(ui, slos, gates),
        "slos": slos,
        "gates": gates,
        "journeys": _journeys(counts.outcomes),
        "model": scenario.load.model,
        "arrivals": {"due": counts.arrivals.due, "dropped": counts.arrivals.dropped},
        "sessions_lost": sum(
            n for key, n in counts.outcomes.items() if _outcome(key).startswith(LOST_PREFIXES)
        ),
        "faults": None if mock is None else [_fault(f, moment.now) for f in mock.faults],
        "mock_error": None if mock is None else mock.error,
        "manual_control": ui.manual,
        "report": "./authload/report" if ui.from_runner else None,
        "report_ready": False,  # the runner serves it once Locust has quit
        "note": _note(ui, config),
    }


def _elapsed(ui: UiRun, now: float) -> float | None:
    if ui.started is None:
        return None
    return (ui.stopped if ui.stopped is not None else now) - ui.started


def _phase(ui: UiRun, state: str) -> str:
    if ui.stopped is not None:
        return "stopped"
    return "running" if ui.started is not None else "ready"


def _stage(config: RunConfig, elapsed: float | None) -> int | None:
    return None if elapsed is None else stage_at(config.scenario.load, elapsed)


def _slo(text: str, stats: Any, elapsed: float | None) -> dict[str, Any]:
    value, met = slo_live(text, stats, elapsed or 0.0)
    spec = parse_slo(text)
    unit = "%" if spec.is_share else "/s" if spec.stat == "rate" else "ms"
    status = AT_END if met is None else OK if met else FAILING
    return {"slo": text, "value": value, "unit": unit, "met": met, "status": status}


def _outcome(key: str) -> str:
    return key.partition(":")[2]


def _fault(fault: dict[str, Any], now: float) -> dict[str, Any]:
    """A fault window of the mock, with its status now."""
    end = fault.get("ends_at")
    if fault.get("active"):
        status = "open"
    elif end is not None and end <= now:
        status = "closed"
    else:
        status = "to come"
    return {**fault, "status": status}


def _journeys(outcomes: Counter[str]) -> dict[str, dict[str, Any]]:
    flows: dict[str, dict[str, Any]] = {}
    for key, n in sorted(outcomes.items()):
        flow, _, outcome = key.partition(":")
        row = flows.setdefault(flow, {"ended": 0, "ok": 0, "success_pct": None})
        row["ended"] += n
        row["ok"] += n if journey_ok(outcome) else 0
    for row in flows.values():
        row["success_pct"] = 100.0 * row["ok"] / row["ended"] if row["ended"] else None
    return flows


def _gates(
    config: RunConfig, counts: live_counts.LiveCounts, moment: Moment, mock: MockView | None
) -> list[dict[str, Any]]:
    off = set(config.scenario.gates_off)
    found = {
        "revoked_token_accepted": _revoked(counts.outcomes),
        "rotated_token_accepted": _rotated(mock),
        "reconciliation": (AT_END, "records, Locust's and the mock's counts, from the records"),
        "processes": _processes(moment),
        "load_offered": _offered(config, counts, moment),
    }
    return [
        {
            "gate": name,
            "severity": severity,
            "enabled": name not in off,
            "status": found[name][0] if name not in off else "off",
            "evidence": found[name][1],
        }
        for name, severity in GATES
    ]


def _revoked(outcomes: Counter[str]) -> tuple[str, str]:
    seen = sum(n for key, n in outcomes.items() if _outcome(key) == REVOKED_OUTCOME)
    if seen:
        return FAILING, f"{seen} journeys saw a revoked token accepted by gigma.logout"
    return OK, "no revoked token seen accepted (revocation times: at the end)"


def _rotated(mock: MockView | None) -> tuple[str, str]:
    if mock is None:
        return OK, "only a mock target can tell (not a mock)"
    if mock.stale_accepted is None:
        return AT_END, f"the mock's counters: {mock.error or 'not read yet'}"
    if mock.stale_accepted:
        return FAILING, f"mobile.refresh accepted {mock.stale_accepted} rotated refresh tokens"
    return OK, "the mock refused every rotated refresh token so far"


def _processes(moment: Moment) -> tuple[str, str]:
    if moment.missing:
        return "INVALID", f"Locust found workers missing: {', '.join(moment.missing)}"
    return OK, f"Locust processes alive: {moment.processes}"


def _offered(config: RunConfig, counts: live_counts.LiveCounts, moment: Moment) -> tuple[str, str]:
    load = config.scenario.load
    if load.model == "open":
        started = counts.arrivals.started
        return AT_END, f"arrivals due {counts.arrivals.due}, started {started}"
    planned = [s.users for s in load.stages]
    return AT_END, f"users running {moment.users} (stages plan {planned})"


def _verdict(ui: UiRun, slos: list[dict[str, Any]], gates: list[dict[str, Any]]) -> str:
    if ui.started is None:
        return "not started"
    statuses = {g["status"] for g in gates if g["enabled"]}
    if FAILING in statuses or any(s["met"] is False for s in slos):
        return "FAILING"
    return "INVALID" if "INVALID" in statuses else "PASSING"


def _note(ui: UiRun, config: RunConfig) -> str:
    if ui.stopped is None:
        return "live estimate from Locust's statistics; the verdict is the records' at the end"
    if ui.from_runner:
        return "the test stopped: authload is writing the summary, the report and the verdict"
    return f"the test stopped: Locust quits, its records closed in {config.run_dir}"


def rows(view: dict[str, Any]) -> list[dict[str, str]]:
    """The view as the rows of the authload tab's table (what, name, now, status)."""
    out = [
        _row("verdict so far", view["scenario"], view["verdict_so_far"], view["phase"]),
        _row("run", view["run"], _progress(view), view["note"]),
    ]
    out += [_row("SLO", s["slo"], _value(s["value"], s["unit"]), s["status"]) for s in view["slos"]]
    out += [
        _row(f"gate ({g['severity']})", g["gate"], g["evidence"], g["status"])
        for g in view["gates"]
    ]
    for flow, j in view["journeys"].items():
        success = _value(j["success_pct"], "%")
        out.append(_row("journeys", flow, f"{j['ok']} ok of {j['ended']} ended", success))
    if view["model"] == "open":
        out.append(_row("arrivals", "dropped", _dropped(view["arrivals"]), ""))
    else:
        out.append(_row("arrivals", "dropped", "-", "closed model: no arrivals"))
    out.append(_row("sessions", "lost", str(view["sessions_lost"]), ""))
    out += [_fault_row(f) for f in view["faults"] or []]
    if view["mock_error"]:
        out.append(_row("mock", "faults", view["mock_error"], "unknown"))
    out += [
        _row("manual control", f"at {m['elapsed_s']:.0f} s", f"{m['users']} users", "recorded")
        for m in view["manual_control"]
    ]
    if view["report"]:
        out.append(_row("report", "written when the test stops", view["report"], ""))
    return out


def _row(what: str, name: str, now: str, status: str) -> dict[str, str]:
    return {"what": what, "item": name, "now": now, "status": status}


def _progress(view: dict[str, Any]) -> str:
    if view["elapsed_s"] is None:
        return f"{view['target']}: press start ({view['duration_s']:g} s planned)"
    stage = "-" if view["stage"] is None else view["stage"]
    return (
        f"{view['elapsed_s']:.0f} s of {view['duration_s']:g} s, stage {stage}, "
        f"{view['users']} users, {view['requests']} requests"
    )


def _value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}%" if unit == "%" else f"{value:.4g} {unit}"


def _dropped(arrivals: dict[str, int]) -> str:
    return f"{arrivals['dropped']} of {arrivals['due']} due"


def _fault_row(fault: dict[str, Any]) -> dict[str, str]:
    end = "no end" if fault.get("end_s") is None else f"{fault['end_s']:g} s"
    window = f"{fault.get('start_s', 0):g} s to {end} (mock clock)"
    scope = ", ".join(fault.get("endpoints") or ["*"])
    share = fault.get("fraction")
    name = f"{fault.get('kind')} on {scope}" + (f" ({share:.0%})" if share is not None else "")
    return _row("fault window", name, window, str(fault["status"]))
