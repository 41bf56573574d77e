"""Scenario files: schema, errors naming file, line and field, duration override."""

from __future__ import annotations

from pathlib import Path

import pytest

from authload.errors import ScenarioError
from authload.scenario import load_scenario, parse_scenario

SCENARIOS = sorted((Path(__file__).parents[1] / "scenarios").glob("*.yaml"))

MINIMAL = """
name: t
mix: {sms: 1}
load:
  stages:
    - {duration_s: 10, users: 2}
"""


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_shipped_scenarios_validate(path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.name == path.stem


def test_defaults() -> None:
    s = parse_scenario(MINIMAL, "t.yaml")
    assert (s.target, s.load.model, s.retry.policy, s.duration_s) == (
        "mock",
        "closed",
        "backoff",
        10,
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            MINIMAL.replace("users: 2", "users: -1"),
            "t.yaml:6: load.stages.0.users: Input should be greater than or equal to 0",
        ),
        (
            MINIMAL.replace("{sms: 1}", "{sms: 1, fax: 2}"),
            "t.yaml:3: mix.fax: must be one of 'password_call', 'sms', 'esia' or 'lkfl'",
        ),
        (
            MINIMAL + "retry: {policy: yolo}\n",
            "t.yaml:7: retry.policy: must be one of 'none', 'immediate', 'backoff', 'retry_after', "
            "'budget' or 'adaptive'",
        ),
        (
            MINIMAL + "think_time: {dist: gauss}\n",
            "t.yaml:7: think_time: must be one of 'fixed', 'uniform', 'lognormal'",
        ),
        (MINIMAL + "colour: red\n", "t.yaml:7: colour: unknown field"),
        (MINIMAL.replace("name: t\n", ""), "t.yaml:2: name: required"),
        (
            MINIMAL + "events: [{kind: refresh_storm, at_s: 99, sessions: 5}]\n",
            "events.0.at_s: 99.0 is past the end of the load (10 s)",
        ),
        (
            MINIMAL.replace("{duration_s: 10, users: 2}", "{duration_s: 10, rate: 2}"),
            "stages.0: a closed-model stage needs users",
        ),
        (MINIMAL + "slos: ['p99(gigma.nope) < 1s']\n", "slos.0: unknown endpoint 'gigma.nope'"),
        (MINIMAL + "slos: ['error_rate(*) < 5ms']\n", "error_rate is measured in %, not 'ms'"),
        (MINIMAL + "slos: ['fast please']\n", "not an SLO: 'fast please'"),
        ("name: [unclosed", "t.yaml: not valid YAML"),
        ("- a list", "t.yaml: a scenario is a mapping"),
    ],
)
def test_errors_name_file_line_field_and_what_is_allowed(text: str, expected: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "t.yaml")
    assert expected in str(caught.value)


def test_every_problem_is_reported_at_once() -> None:
    text = MINIMAL.replace("users: 2", "users: -1") + "retry: {policy: yolo}\n"
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "t.yaml")
    assert len(str(caught.value).splitlines()) == 2


def test_duration_override_stretches_the_last_stage() -> None:
    text = MINIMAL.replace(
        "- {duration_s: 10, users: 2}",
        "- {duration_s: 10, users: 2}\n    - {duration_s: 20, users: 4}",
    )
    s = parse_scenario(text, "t.yaml").with_duration(3600)
    assert [st.duration_s for st in s.load.stages] == [10, 3590]
    with pytest.raises(ScenarioError, match="must exceed the stages before the last"):
        parse_scenario(text, "t.yaml").with_duration(5)


def test_missing_file_and_behaviour_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read the scenario"):
        load_scenario(tmp_path / "nope.yaml")
    path = tmp_path / "s.yaml"
    path.write_text(MINIMAL + "mock: {behaviour: missing.yaml}\n", encoding="utf-8")
    with pytest.raises(ScenarioError, match=r"mock\.behaviour: no such file .missing\.yaml."):
        load_scenario(path)
    (tmp_path / "b.yaml").write_text("{}\n", encoding="utf-8")
    path.write_text(MINIMAL + "mock: {behaviour: b.yaml}\n", encoding="utf-8")
    assert load_scenario(path).mock.behaviour == str((tmp_path / "b.yaml").resolve())
