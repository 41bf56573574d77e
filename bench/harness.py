"""What every bench does around the processes it measures, written once.

A bench's figures are only as good as its hold on the processes behind them, and the same
few things went wrong in each bench that kept a copy of them:

- CPU pinning: a rate per core means nothing if the scheduler moves the process, and the
  server and the load generator must not share a core unless the bench says so. What a bench
  starts runs under ``taskset`` (:func:`pinned`); a process something else started, such as
  the embedded mock of ``authload run``, is moved thread by thread (:func:`pin`).
- Ports: the benches run beside other work, so no port is assumed free. A server gets a
  socket bound here (:func:`bound_socket`, passed on as a file descriptor) or a port the
  kernel just handed out (:func:`free_port`); the bench waits until it listens and answers
  (:func:`listening`, :func:`wait_until`), and gives up early if it died.
- Process groups: servers fork (nginx and granian workers, Locust's, the embedded mock), and
  a child left behind keeps a core busy and skews every later figure. Each process starts in
  a session of its own (:func:`start_in_group`) and is stopped by signalling its whole group
  (:class:`Processes`, :func:`kill_group`), which also reaches children of a leader that
  already exited.
- Interrupts: Ctrl-C, SIGTERM and SIGHUP raise KeyboardInterrupt (:func:`raise_on_interrupts`)
  so the ``finally`` that stops everything runs, and are ignored during that clean-up
  (:func:`ignore_interrupts`) so a second Ctrl-C cannot cut it short.

The bench scripts import it by name (``import harness``): each runs as a script from
bench/, which Python puts first on ``sys.path``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any

STARTUP_TIMEOUT_S = 30.0  # a server must answer within this
STOP_TIMEOUT_S = 5.0  # SIGTERM to a process group, then SIGKILL after this
INTERRUPTS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class BenchError(Exception):
    """The bench cannot go on: a server, the load generator or a measured step failed."""


# --- CPUs ---------------------------------------------------------------------------------


def need_taskset(name: str) -> str | None:
    """The path of ``taskset`` (util-linux); None, after saying so, when it is missing."""
    taskset = shutil.which("taskset")
    if taskset is None:
        print(f"{name}: taskset (util-linux) is required", file=sys.stderr)
    return taskset


def pinned(taskset: str, cpus: int | str, cmd: Sequence[str]) -> list[str]:
    """``cmd`` run by ``taskset`` on ``cpus`` (a CPU, or taskset's list: ``"0,2"``): the
    process and every thread and child it makes stay there from the first instruction."""
    return [taskset, "-c", str(cpus), *cmd]


def pin(pid: int, cpu: int) -> None:
    """Move every thread of a running process to one CPU (threads it makes later inherit
    it), for a process the bench did not start itself. Threads that ended meanwhile are
    skipped; call it again to catch threads started since."""
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            os.sched_setaffinity(int(task.name), {cpu})
        except OSError:
            continue


def affinity(pid: int) -> set[int]:
    """The CPUs any thread of a process may run on (to report where it really ran)."""
    cpus: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            cpus |= os.sched_getaffinity(int(task.name))
        except OSError:
            continue
    return cpus


# --- ports --------------------------------------------------------------------------------


def bound_socket(port: int = 0, reuse_port: bool = False) -> socket.socket:
    """A TCP socket bound on 127.0.0.1 (``port`` 0: one the kernel picks), inheritable, to
    pass to a server as a file descriptor: the port is held from here on, so no one else can
    take it between choosing it and the server's start. ``reuse_port`` lets several
    processes listen on one port (SO_REUSEPORT; the kernel spreads connections over them)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.set_inheritable(True)
    return sock


def free_port() -> int:
    """A port on 127.0.0.1 free right now, for a program that can only be given a number."""
    with contextlib.closing(bound_socket()) as sock:
        return int(sock.getsockname()[1])


def listening(port: int) -> int:
    """How many sockets listen on 127.0.0.1:``port`` (one per process with SO_REUSEPORT),
    from /proc/net/tcp: no connection is made, so none is counted by the server."""
    lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    local = f"0100007F:{port:04X}"
    return sum(1 for line in lines if line.split()[1] == local and line.split()[3] == "0A")


def wait_until(
    ready: Callable[[], bool],
    procs: Sequence[Proc],
    what: str,
    timeout_s: float = STARTUP_TIMEOUT_S,
) -> None:
    """Poll ``ready()`` until it holds; :class:`BenchError` with the end of their logs as soon
    as one of ``procs`` (what serves it) exits, or after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.popen.poll() is not None:
                raise BenchError(f"{what} exited with {proc.popen.returncode}:\n{proc.log_tail()}")
        if ready():
            return
        time.sleep(0.05)
    tails = "\n".join(p.log_tail() for p in procs)
    raise BenchError(f"{what} not ready within {timeout_s:.0f} s:\n{tails}")


# --- process groups -----------------------------------------------------------------------


def start_in_group(
    cmd: Sequence[str],
    out: IO[Any],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    pass_fds: Sequence[int] = (),
) -> subprocess.Popen[bytes]:
    """Start ``cmd`` as the leader of a new session (its own process group), stdout and
    stderr to ``out``, no stdin, the environment plus ``env``. Its pid is its group's id:
    :func:`kill_group` and :meth:`Processes.stop` reach everything it forks."""
    return subprocess.Popen(
        list(cmd),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
        pass_fds=tuple(pass_fds),
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )


def kill_group(pgid: int, sig: signal.Signals = signal.SIGKILL) -> None:
    """Signal a whole process group; nothing if it is gone already."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _stat(pid: str) -> list[str] | None:
    """The fields of /proc/PID/stat after ``pid (comm)``: state, ppid, pgrp, ..., utime
    (index 11), stime (12); None if the process is gone."""
    try:
        raw = Path("/proc", pid, "stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()  # comm may hold spaces and parentheses


def process_cpu_ticks(pid: int) -> int:
    """User + system CPU ticks of one process, every thread of it; 0 once it is gone."""
    fields = _stat(str(pid))
    return 0 if fields is None else int(fields[11]) + int(fields[12])


def _all_stats() -> Iterable[list[str]]:
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and (fields := _stat(entry.name)) is not None:
            yield [entry.name, *fields]


def group_members(pgid: int) -> list[int]:
    """Pids of the live (not zombie) processes in a process group."""
    return [int(f[0]) for f in _all_stats() if f[1] != "Z" and int(f[3]) == pgid]


def group_cpu_ticks(pgids: Iterable[int]) -> dict[int, int]:
    """User + system CPU ticks of the live processes of each given process group: a server's
    CPU with its workers, measured from outside it."""
    ticks = dict.fromkeys(pgids, 0)
    for f in _all_stats():
        pgrp = int(f[3])
        if pgrp in ticks:
            ticks[pgrp] += int(f[12]) + int(f[13])  # utime, stime
    return ticks


TICKS = os.sysconf("SC_CLK_TCK")  # of /proc/stat and /proc/PID/stat


def machine_busy_ticks() -> int:
    """Busy CPU ticks of the whole machine that a process or another guest took: user, nice,
    system and steal. Idle and iowait are not busy; interrupts (irq, softirq) are left out
    too: they are mostly the kernel carrying the bench's own loopback traffic, charged to no
    process (about 11% of a core at 13,000 requests/s), not work that disturbs the bench."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, _irq, _softirq, steal = (int(f) for f in fields[:8])
    return user + nice + system + steal


def window_figures(
    *,
    endpoint: str,
    elapsed: float,
    requests: int,
    all_requests: int,
    failures: int,
    latency_ms: tuple[float, float, float],
    users: int,
    load_cpu_s: float,
    server_pct: list[float],
    machine_pct: float,
    errors: dict[str, int],
) -> dict[str, Any]:
    """A load side's figures over a measured window, the same keys whatever sent the load
    (Locust, wrk, k6). ``latency_ms``: p50, p99, max; ``server_pct``: per server process
    group, % of one core; ``machine_pct``: :func:`machine_busy_ticks` over the window."""
    load_pct = 100.0 * load_cpu_s / elapsed
    return {
        "endpoint": endpoint,
        "seconds": round(elapsed, 3),
        "requests": requests,
        "all_requests": all_requests,
        "failures": failures,
        "rps": requests / elapsed if elapsed else 0.0,
        "p50_ms": latency_ms[0],
        "p99_ms": latency_ms[1],
        "max_ms": latency_ms[2],
        "users": users,
        "load_cpu_pct": load_pct,
        "load_us_per_req": 1e6 * load_cpu_s / all_requests if all_requests else 0.0,
        "server_cpu_pct": sum(server_pct),
        "server_cpu_pct_per_process": server_pct,
        # CPU used by anything else (other processes, steal), in % of one core
        "other_cpu_pct": max(0.0, machine_pct - sum(server_pct) - load_pct),
        "errors": errors,
    }


@dataclass
class Proc:
    """A process a bench started, leader of its own process group, and its log."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pgid(self) -> int:
        return self.popen.pid  # started with start_new_session: leader of its own group

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


class Processes:
    """Every process the bench starts, each in a new session (process group) of its own,
    logging to a file of its own under ``logdir``.

    Stopping one signals its whole group, so the children it forked (nginx and granian
    workers) end with it. ``stop_all`` runs from a ``finally``, on errors and Ctrl-C too.
    """

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.live: list[Proc] = []

    def start(
        self,
        name: str,
        cmd: Sequence[str],
        pass_fds: Sequence[int] = (),
        env: dict[str, str] | None = None,
    ) -> Proc:
        log = self.logdir / f"{name}.{len(os.listdir(self.logdir))}.log"
        with log.open("wb") as out:
            popen = start_in_group(cmd, out, env=env, pass_fds=pass_fds)
        proc = Proc(name, popen, log)
        self.live.append(proc)
        return proc

    def stop(self, proc: Proc) -> None:
        """SIGTERM to the process group, SIGKILL after STOP_TIMEOUT_S; reaps the leader."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pgid, sig)  # also reaches children left by an exited leader
            deadline = time.monotonic() + STOP_TIMEOUT_S
            while time.monotonic() < deadline:
                if proc.popen.poll() is not None and not group_members(proc.pgid):
                    break
                time.sleep(0.02)
            else:
                continue
            break
        if proc in self.live:
            self.live.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self.live)):
            self.stop(proc)


# --- interrupts and the start of a bench ----------------------------------------------------


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def raise_on_interrupts() -> None:
    """SIGINT, SIGTERM and SIGHUP raise KeyboardInterrupt (even if inherited as ignored), so
    the ``finally`` that stops the processes runs."""
    for sig in INTERRUPTS:
        signal.signal(sig, _raise_interrupt)


def ignore_interrupts() -> None:
    """For the clean-up itself: a second Ctrl-C must not cut it short."""
    for sig in INTERRUPTS:
        signal.signal(sig, signal.SIG_IGN)


def start_bench(name: str) -> tuple[str, Path] | None:
    """What every bench that pins and starts processes needs first: ``taskset`` (None, after
    saying so, when missing), interrupts raised (:func:`raise_on_interrupts`), and a fresh
    temporary directory with ``logs/``. Returns (taskset, directory)."""
    taskset = need_taskset(name)
    if taskset is None:
        return None
    raise_on_interrupts()
    tmp = Path(tempfile.mkdtemp(prefix=f"{name}-"))
    (tmp / "logs").mkdir()
    return taskset, tmp
