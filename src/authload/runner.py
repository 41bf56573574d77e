"""`authload run`: validate, start the embedded mock if the target is the mock, run Locust
headless in child processes, and leave a complete run directory with a verdict.

Locust runs as ``python -m locust -f authload/load/locustfile.py`` so that its own engine
(``--processes``, master and workers, CSV and HTML reports) is used as Locust intends, and so
that gevent's monkey-patching stays out of this process.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from authload.errors import AuthloadError, TargetError
from authload.mock.server import EmbeddedMock
from authload.results import (
    MANIFEST_FILE,
    SPOOL_SUFFIX,
    SUMMARY_FILE,
    append_event,
    finalize_records,
    read_events,
    read_records,
    write_json,
)
from authload.runconfig import APP_TOKEN_ENV, CLIENT_SECRET_ENV, CONFIG_ENV, RunConfig, TestAccount
from authload.scenario import Scenario, load_scenario
from authload.targets import Target, check_safety, resolve_target

LOCUSTFILE = Path(__file__).parent / "load" / "locustfile.py"
GRACE_S = 120.0  # beyond the scenario's duration before the run is killed


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    verdict: str  # pass, fail, aborted, error
    exit_code: int
    summary: dict[str, Any]


def run(
    scenario_path: str | Path,
    target_name: str | None = None,
    out: str | Path = "runs",
    processes: int = 1,
    duration_s: float | None = None,
    confirm: bool = False,
    targets_file: str | Path | None = None,
) -> RunResult:
    scenario = load_scenario(scenario_path)
    if duration_s is not None:
        scenario = scenario.with_duration(duration_s)
    if processes < 1:
        raise TargetError("--processes must be at least 1")
    target = resolve_target(target_name or scenario.target, targets_file)
    stated = check_safety(target, scenario, confirm)
    if stated:
        print(f"authload: target {target.name} limits: {', '.join(stated)}", file=sys.stderr)
    scenario = _apply_limits(scenario, target)
    if not target.mock:  # fail on missing secrets or URLs before anything is created
        target.secrets()
        target.urls()
    run_dir = _new_run_dir(Path(out), scenario.name)
    print(f"authload: run directory {run_dir}", file=sys.stderr, flush=True)
    manifest = _manifest(scenario, target, processes)
    write_json(run_dir / MANIFEST_FILE, manifest)
    try:
        exit_status, aborted, mock_stats = _execute(scenario, target, processes, run_dir)
        status = "aborted" if aborted else ("completed" if exit_status == 0 else "error")
    except BaseException as exc:
        append_event(run_dir, {"t": time.time(), "kind": "run_error", "error": str(exc)})
        manifest.update(end=_now(), status="error", error=str(exc))
        write_json(run_dir / MANIFEST_FILE, manifest)
        finalize_records(run_dir)
        raise
    finalized = finalize_records(run_dir)
    if mock_stats is not None:
        write_json(run_dir / "mock_stats.json", mock_stats)
    manifest.update(
        end=_now(),
        status=status,
        locust_exit=exit_status,
        records=finalized.rows,
        torn_spools=finalized.torn,
        died=_died(run_dir, finalized.unclosed),
    )
    write_json(run_dir / MANIFEST_FILE, manifest)
    from authload.analysis.summary import summarize

    summary = summarize(run_dir, scenario, status)
    write_json(run_dir / SUMMARY_FILE, summary)
    try:  # the report only shows the run: failing to write it must not lose the run
        from authload.analysis.report import write_report

        write_report(run_dir)
    except Exception as exc:
        print(f"authload: report.html not written: {exc!r}", file=sys.stderr, flush=True)
    verdict = summary["verdict"]
    code = {"pass": 0, "fail": 1}.get(verdict, 3)
    return RunResult(run_dir, verdict, code, summary)


def _apply_limits(scenario: Scenario, target: Target) -> Scenario:
    """A shared target's abort level overrides a laxer one in the scenario."""
    level = target.limits.abort_error_rate
    if level is None:
        return scenario
    abort = scenario.abort
    if abort is not None and abort.error_rate <= level:
        return scenario
    from authload.scenario import Abort

    rule = (abort or Abort()).model_copy(update={"error_rate": level})
    return scenario.model_copy(update={"abort": rule})


def _execute(
    scenario: Scenario, target: Target, processes: int, run_dir: Path
) -> tuple[int, bool, dict[str, Any] | None]:
    if not target.mock:
        token, secret = target.secrets()
        gigma_url, mobile_url = target.urls()
        return (
            _locust(
                scenario, target, processes, run_dir, gigma_url, mobile_url, None, token, secret
            ),
            _aborted(run_dir),
            None,
        )
    env = {f"AUTHLOAD_MOCK_{k.upper()}": str(v) for k, v in scenario.mock.settings.items()}
    args = _behaviour_args(scenario, run_dir)
    with EmbeddedMock(env=env, args=args) as mock:
        from authload.mock.settings import load_settings

        settings = load_settings(**{k: v for k, v in scenario.mock.settings.items()})
        code = _locust(
            scenario,
            target,
            processes,
            run_dir,
            mock.url,
            mock.url,
            mock.url,
            settings.app_token,
            settings.client_secret,
        )
        stats = json.loads(_get(mock.url + "/_mock/stats"))
        _keep_fault_history(run_dir, json.loads(_get(mock.url + "/_mock/faults"))["history"])
    return code, _aborted(run_dir), stats


def _keep_fault_history(run_dir: Path, history: list[dict[str, Any]]) -> None:
    """The mock's fault windows, as it logged them: in mock_faults.json and the events."""
    write_json(run_dir / "mock_faults.json", history)
    for entry in history:
        append_event(
            run_dir,
            {
                "t": entry["t"],
                "kind": f"fault_{entry['event']}",
                "fault": entry["fault"],
                "fault_kind": entry["kind"],
                "endpoints": entry["endpoints"],
                "name": entry["name"],
            },
        )


def _behaviour_args(scenario: Scenario, run_dir: Path) -> tuple[str, ...]:
    behaviour = scenario.mock.behaviour
    if behaviour is None or behaviour == "default":
        return ()
    if isinstance(behaviour, dict):
        path = run_dir / "behaviour.json"
        path.write_text(json.dumps(behaviour, indent=2), encoding="utf-8")
        return ("--behaviour", str(path))
    return ("--behaviour", behaviour)


def _locust(
    scenario: Scenario,
    target: Target,
    processes: int,
    run_dir: Path,
    gigma_url: str,
    mobile_url: str,
    mock_url: str | None,
    app_token: str,
    client_secret: str,
) -> int:
    accounts = [
        TestAccount(
            phone=a.phone,
            inn=a.inn,
            lkfl_password=os.environ.get(a.lkfl_password_env or "", None),
            call_password=a.call_password,
            sms_code=a.sms_code,
        )
        for a in target.accounts
    ]
    config = RunConfig(
        scenario, run_dir, target.name, gigma_url, mobile_url, mock_url, processes, accounts
    )
    with tempfile.TemporaryDirectory(prefix="authload-run-") as tmp:
        config_path = Path(tmp) / "config.json"  # outside the run directory: it may hold
        config_path.write_text(json.dumps(config.to_json()), encoding="utf-8")  # passwords
        os.chmod(config_path, 0o600)
        cmd = [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(LOCUSTFILE),
            "--headless",
            "--csv",
            str(run_dir / "locust"),
            "--html",
            str(run_dir / "locust.html"),
            "--only-summary",
            "--loglevel",
            "WARNING",
            "--exit-code-on-error",
            "0",
            "--stop-timeout",
            str(int(scenario.request_timeout_s) + 1),
        ]
        if processes > 1:  # a free port for the master, so parallel runs never collide
            port = str(_free_port())
            cmd += [
                "--processes",
                str(processes),
                "--master-bind-host",
                "127.0.0.1",
                "--master-bind-port",
                port,
                "--master-host",
                "127.0.0.1",
                "--master-port",
                port,
            ]
        env = {
            **os.environ,
            CONFIG_ENV: str(config_path),
            APP_TOKEN_ENV: app_token,
            CLIENT_SECRET_ENV: client_secret,
            "PYTHONUNBUFFERED": "1",
        }
        proc = subprocess.Popen(cmd, env=env, stdout=sys.stderr, stderr=sys.stderr)
        try:
            return proc.wait(timeout=scenario.duration_s + GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AuthloadError(
                f"Locust did not finish within {GRACE_S:g} s of the scenario's "
                f"end; killed (records so far are kept)"
            ) from None
        except KeyboardInterrupt:
            proc.terminate()
            proc.wait(timeout=30)
            append_event(run_dir, {"t": time.time(), "kind": "abort", "reason": "interrupted"})
            return 130


def _died(run_dir: Path, unclosed: list[str]) -> list[dict[str, Any]]:
    """Processes whose record spool was never closed: they died. When: their last record."""
    if not unclosed:
        return []
    import pyarrow.compute as pc  # type: ignore[import-untyped]

    table = read_records(run_dir, columns=["worker", "t"])
    died = []
    for spool in unclosed:
        worker = spool.removesuffix(SPOOL_SUFFIX)
        times = table.filter(pc.equal(table["worker"], worker))["t"]
        last = pc.max(times).as_py() if len(times) else None
        died.append(
            {
                "worker": worker,
                "last_record_t": last,
                "last_record": None if last is None else _iso(last),
            }
        )
    return died


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _aborted(run_dir: Path) -> bool:
    return any(e.get("kind") == "abort" for e in read_events(run_dir))


def _get(url: str) -> str:
    import httpx

    return httpx.get(url, timeout=10).text


def _new_run_dir(out: Path, name: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for n in range(100):
        run_dir = out / (f"{stamp}-{name}" if n == 0 else f"{stamp}-{name}-{n}")
        try:
            run_dir.mkdir(parents=True)
            return run_dir
        except FileExistsError:
            continue
    raise AuthloadError(f"cannot create a run directory under {out}")


def _manifest(scenario: Scenario, target: Target, processes: int) -> dict[str, Any]:
    return {
        "scenario": scenario.model_dump(mode="json"),
        "target": target.name,
        "versions": {name: _version(name) for name in ("authload", "locust", "pyarrow")}
        | {"python": platform.python_version()},
        "git_revision": _git_revision(),
        "start": _now(),
        "end": None,
        "status": "running",
        "seed": scenario.seed,
        "processes": processes,
    }


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _git_revision() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).parent,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
