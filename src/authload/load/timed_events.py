"""Timed events of a scenario: refresh storms and mass logouts, each process doing its share.

Both are open model: the requests go out on schedule whatever the answers take, each in its
own greenlet, with its intended start recorded.
"""

from __future__ import annotations

import math
import time
from typing import Any

import gevent

from authload.load.flows import (
    LOGOUT,
    GigmaSession,
    Journey,
    MobileSession,
    gigma_login,
    logout_everywhere,
    refresh,
    run_steps,
)
from authload.load.runtime import Runtime
from authload.rundir.events import (
    MassLogoutEvent,
    RefreshStormEndEvent,
    RefreshStormStartEvent,
    append_event,
)
from authload.rundir.records import STOPPED
from authload.scenario.model import MassLogout, RefreshStorm

StormOrLogout = RefreshStormStartEvent | RefreshStormEndEvent | MassLogoutEvent
MIN_CONNECTIONS = 10  # a floor: connections open only when a request needs one


def run_timed_events(rt: Runtime, started: float) -> None:
    """Sleep until each event is due, then run this process's share of it."""
    client = rt.client(connections=event_connections(rt))
    for event in sorted(rt.scenario.events, key=lambda e: e.at_s):
        gevent.sleep(max(0.0, started + event.at_s - time.time()))
        if isinstance(event, RefreshStorm):
            refresh_storm(rt, client, event)
        else:
            mass_logout(rt, client, event)


def event_connections(rt: Runtime) -> int:
    """Connections this process's events may need at once: a storm refreshes its share of
    the sessions together, a mass logout runs a journey per chosen counterparty (at most one
    per user of the process, or per open-model journey in flight). With fewer, a request
    would wait inside the client for a free connection, and the wait would be counted as
    the service's latency. Connections open only when needed."""
    _, processes = rt.share()
    load = rt.scenario.load
    if load.model == "open":
        population = load.max_in_flight
    else:
        population = math.ceil(max(s.users or 0 for s in load.stages) / processes)
    storms = [
        math.ceil(e.sessions / processes) for e in rt.scenario.events if isinstance(e, RefreshStorm)
    ]
    return max(MIN_CONNECTIONS, population, *storms)


def _note(rt: Runtime, kind: type[StormOrLogout], **fields: Any) -> None:
    append_event(rt.config.run_dir, kind(worker=rt.worker, **fields))


def refresh_storm(rt: Runtime, client: Any, event: RefreshStorm) -> None:
    _, processes = rt.share()
    wanted = math.ceil(event.sessions / processes)
    pool = rt.state.idle_mobile
    sessions = [pool.popleft() for _ in range(min(wanted, len(pool)))]
    _note(
        rt,
        RefreshStormStartEvent,
        at_s=event.at_s,
        sessions=len(sessions),
        wanted=wanted,
        window_s=event.window_s,
    )
    if len(sessions) < wanted:
        rt.state.outcomes["storm:sessions_short"] += wanted - len(sessions)
    t0 = time.time()
    step = event.window_s / max(1, len(sessions))
    greenlets = [
        gevent.spawn_later(i * step, _storm_refresh, rt, client, s, t0 + i * step)
        for i, s in enumerate(sessions)
    ]
    gevent.joinall(greenlets)
    _note(rt, RefreshStormEndEvent, at_s=event.at_s, sessions=len(sessions))


def _storm_refresh(rt: Runtime, client: Any, session: MobileSession, due: float) -> None:
    j = rt.journey(client, "refresh_storm", session.account, t_intended=due)
    tokens: list[str] = []

    def steps(j: Journey) -> str:
        token, lost = refresh(j, session.refresh_token)
        tokens.append(token)
        return lost or "completed"

    _journey(rt, j, steps, due)
    if tokens and tokens[0] != session.refresh_token:  # rotated: the session lives on
        rt.state.idle_mobile.append(MobileSession(session.account, tokens[0]))


def _journey(rt: Runtime, j: Journey, steps: Any, t_start: float) -> str:
    """Run a timed event's journey, counted and kept like a flow's (from ``t_start``)."""
    outcome = run_steps(steps, j)
    rt.state.record(j.ctx.flow, outcome, t_start, j.ctx)
    return outcome


def mass_logout(rt: Runtime, client: Any, event: MassLogout) -> None:
    live = [s for s in rt.state.gigma.values() if s.revoked_at is None]
    chosen = rt.rng.sample(live, k=round(len(live) * event.share)) if live else []
    now = time.time()
    for session in chosen:
        session.revoked_at = now
    _note(rt, MassLogoutEvent, at_s=event.at_s, counterparties=len(chosen), live=len(live))
    gevent.joinall([gevent.spawn(_logout_everywhere, rt, client, s, event) for s in chosen])


def _logout_everywhere(rt: Runtime, client: Any, session: GigmaSession, event: MassLogout) -> None:
    """Logout from all devices; the other devices must be refused from then on; later the
    user notices and logs in again."""
    j = rt.journey(client, "mass_logout", session.account)
    logout = _journey(rt, j, lambda j: logout_everywhere(j, session.tokens, LOGOUT), time.time())
    if logout == STOPPED:
        return
    j.wait(event.relogin_delay)
    relogin = rt.journey(client, "relogin", session.account)

    def steps(j: Journey) -> str:
        token = gigma_login(j)
        j.call("gigma.logout", {"from_all_devices": False}, bearer=token)
        return "completed"

    _journey(rt, relogin, steps, time.time())
