"""Targets: built-ins, files, secrets from the environment only, safety limits."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from authload.errors import TargetError
from authload.run.sessions import session_for
from authload.run.targets import load_targets, resolve_target
from authload.scenario.loader import parse_scenario
from authload.scenario.model import Scenario


def _scenario(
    users: int = 2, name: str = "beta-smoke", mix: str = "{password_call: 1}"
) -> Scenario:
    return parse_scenario(
        f"""
name: {name}
mix: {mix}
load: {{stages: [{{duration_s: 30, users: {users}}}]}}
""",
        "s.yaml",
    )


def test_mock_needs_no_confirmation() -> None:
    assert (
        session_for(resolve_target("mock")).safety(_scenario(users=10_000), confirmed=False) == []
    )


def test_beta_states_its_limits_and_needs_confirmation() -> None:
    beta = resolve_target("beta")
    with pytest.raises(TargetError, match=r"shared environment .*max_users=20.*--confirm"):
        session_for(beta).safety(_scenario(), confirmed=False)
    assert "max_users=20" in session_for(beta).safety(_scenario(), confirmed=True)


@pytest.mark.parametrize(
    ("scenario", "problem"),
    [
        (lambda: _scenario(users=21), "peak users 21 > max_users 20"),
        (lambda: _scenario(name="release-gate"), "scenario 'release-gate' is not allowed"),
        (lambda: _scenario(mix="{esia: 1}"), "only the mock has it"),
    ],
)
def test_beta_refuses_beyond_its_limits_even_confirmed(
    scenario: Callable[[], Scenario], problem: str
) -> None:
    with pytest.raises(TargetError, match=problem):
        session_for(resolve_target("beta")).safety(scenario(), confirmed=True)


def test_secrets_only_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    beta = resolve_target("beta")
    monkeypatch.delenv("AUTHLOAD_BETA_APP_TOKEN", raising=False)
    monkeypatch.setenv("AUTHLOAD_BETA_CLIENT_SECRET", "s")
    with pytest.raises(TargetError, match="set AUTHLOAD_BETA_APP_TOKEN in the environment"):
        beta.secrets()
    monkeypatch.setenv("AUTHLOAD_BETA_APP_TOKEN", "t")
    assert beta.secrets() == ("t", "s")


def test_targets_file(tmp_path: Path) -> None:
    path = tmp_path / "targets.yaml"
    path.write_text(
        "stage:\n  gigma_url: http://127.0.0.1:9/\n  mobile_url: http://127.0.0.1:9\n"
        "  limits: {max_rate: 3}\n",
        encoding="utf-8",
    )
    stage = load_targets(path)["stage"]
    assert stage.urls() == ("http://127.0.0.1:9", "http://127.0.0.1:9")
    assert stage.limits.max_rate == 3
    path.write_text("stage: {colour: red}\n", encoding="utf-8")
    with pytest.raises(TargetError, match=r"stage\.colour: Extra inputs are not permitted"):
        load_targets(path)
    path.write_text("mock: {}\n", encoding="utf-8")
    with pytest.raises(TargetError, match="built in"):
        load_targets(path)
    with pytest.raises(TargetError, match="unknown target 'prod'; known: beta, mock"):
        resolve_target("prod")
