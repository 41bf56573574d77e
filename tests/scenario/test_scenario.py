"""Scenario files: schema, errors naming file, line and field, duration override."""

from __future__ import annotations

from pathlib import Path

import pytest

from authload.errors import ScenarioError
from authload.scenario.loader import load_scenario, parse_scenario

SCENARIOS = sorted((Path(__file__).parents[2] / "scenarios").glob("*.yaml"))

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
            "t.yaml:7: events.0.at_s: 99.0 is past the end of the load (10 s)",
        ),
        (
            MINIMAL.replace("{duration_s: 10, users: 2}", "{duration_s: 10, rate: 2}"),
            "t.yaml:6: load.stages.0: a closed-model stage needs users",
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


def _problems(text: str) -> list[str]:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "t.yaml")
    return str(caught.value).splitlines()


OPEN = """
name: t
mix: {sms: 1}
load:
  model: open
  stages:
    - {duration_s: 10, rate: 2}
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            MINIMAL.replace("duration_s: 10", "duration_s: .inf"),
            "t.yaml:6: load.stages.0.duration_s",
        ),
        (
            MINIMAL.replace("duration_s: 10", "duration_s: .nan"),
            "t.yaml:6: load.stages.0.duration_s",
        ),
        (
            MINIMAL.replace("duration_s: 10", "duration_s: 'nan'"),
            "t.yaml:6: load.stages.0.duration_s",
        ),
        (OPEN.replace("rate: 2", "rate: .inf"), "t.yaml:7: load.stages.0.rate"),
        (MINIMAL.replace("{sms: 1}", "{sms: .nan}"), "t.yaml:3: mix.sms"),
        (MINIMAL + "request_timeout_s: -.inf\n", "t.yaml:7: request_timeout_s"),
        (MINIMAL + "retry:\n  cap_ms: .inf\n", "t.yaml:8: retry.cap_ms"),
        (MINIMAL + "think_time: {dist: fixed, ms: .nan}\n", "t.yaml:7: think_time.ms"),
        (
            MINIMAL + "events:\n  - {kind: mass_logout, at_s: .nan, share: 0.5}\n",
            "t.yaml:8: events.0.at_s",
        ),
        (MINIMAL + "mock: {settings: {password_ttl_s: .inf}}\n", "t.yaml:7: mock.settings"),
        (MINIMAL + "mock: {settings: {password_ttl_s: inf}}\n", "t.yaml:7: mock.settings"),
        (
            MINIMAL + "mock:\n  behaviour:\n    latency: {default: {dist: fixed, ms: .inf}}\n",
            "t.yaml:9: mock.behaviour.latency.default.ms",
        ),
    ],
)
def test_non_finite_numbers_are_refused(text: str, expected: str) -> None:
    problems = _problems(text)
    assert len(problems) == 1, problems
    assert problems[0].startswith(expected)
    assert problems[0].endswith("must be a finite number")


@pytest.mark.parametrize("seconds", [float("nan"), float("inf"), -float("inf"), 0, -5])
def test_duration_override_must_be_finite_seconds_above_0(seconds: float) -> None:
    with pytest.raises(ScenarioError, match="--duration must be a finite number of seconds"):
        parse_scenario(MINIMAL, "t.yaml").with_duration(seconds)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            MINIMAL.replace("{sms: 1}", "{sms: 0}"),
            "t.yaml:3: mix: at least one flow needs a weight above 0",
        ),
        (
            MINIMAL + "events:\n  - {kind: refresh_storm, sessions: 5,\n     at_s: 10}\n",
            "t.yaml:9: events.0.at_s: 10.0 is past the end of the load (10 s)",
        ),
        (
            OPEN.replace("rate: 2}", "rate: 2}\n    - {duration_s: 5, users: 2}"),
            "t.yaml:8: load.stages.1: an open-model stage needs rate",
        ),
    ],
)
def test_cross_field_checks_name_the_line_of_their_field(text: str, expected: str) -> None:
    assert _problems(text) == [expected]


@pytest.mark.parametrize(
    ("flows", "expected"),
    [
        (
            "  password_call:\n    devices:\n      1: 0.5\n      0: 0.5\n",
            "t.yaml:11: flows.password_call.devices.0: a device count is 1..10",
        ),
        (
            "  password_call:\n    devices:\n      1: 0.5\n      11: 0.5\n",
            "t.yaml:11: flows.password_call.devices.11: a device count is 1..10",
        ),
        (
            "  password_call:\n    devices:\n      1: 0.5\n      2: -1\n",
            "t.yaml:11: flows.password_call.devices.2: Input should be greater than or equal to 0",
        ),
        (
            "  password_call:\n    devices: {1: 0, 2: 0}\n",
            "t.yaml:9: flows.password_call.devices: at least one device count needs a share",
        ),
        (
            "  sms:\n    refreshes: [-1, 2]\n",
            "t.yaml:9: flows.sms.refreshes.0: Input should be greater than or equal to 0",
        ),
        (
            "  sms:\n    refreshes: [3, 1]\n",
            "t.yaml:9: flows.sms.refreshes: the min (3) must not exceed the max (1)",
        ),
    ],
)
def test_flow_parameters_that_would_fail_the_run(flows: str, expected: str) -> None:
    problems = _problems(MINIMAL + "flows:\n" + flows)
    assert len(problems) == 1, problems
    assert problems[0].startswith(expected)


def test_devices_up_to_the_mocks_session_cap_are_fine() -> None:
    text = MINIMAL + "flows: {password_call: {devices: {1: 0, 10: 1}}}\n"
    assert parse_scenario(text, "t.yaml").flows.password_call.devices == {1: 0, 10: 1}


@pytest.mark.parametrize(
    ("mock", "expected"),
    [
        (
            "  settings:\n    population: 0\n",
            "t.yaml:9: mock.settings.population: Input should be greater than or equal to 1",
        ),
        (
            "  settings:\n    colour: red\n",
            "t.yaml:9: mock.settings.colour: unknown setting; allowed: store, app_token,",
        ),
        (
            "  settings:\n    behaviour: b.yaml\n",
            "t.yaml:9: mock.settings.behaviour: use mock.behaviour",
        ),
        (
            "  behaviour:\n    capacity:\n      shared: {concurrency: 0}\n",
            "t.yaml:10: mock.behaviour.capacity.shared.concurrency: Input should be greater",
        ),
        (
            "  behaviour:\n    faults:\n      - {kind: latency}\n",
            "t.yaml:10: mock.behaviour.faults.0: a latency fault needs added_ms > 0",
        ),
        ("  behaviour:\n    colour: red\n", "t.yaml:9: mock.behaviour.colour: unknown field"),
    ],
)
def test_mock_settings_and_inline_behaviour_are_checked_with_the_mocks_models(
    mock: str, expected: str
) -> None:
    problems = _problems(MINIMAL + "mock:\n" + mock)
    assert len(problems) == 1, problems
    assert problems[0].startswith(expected)


def test_mock_settings_ignore_this_processs_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTHLOAD_MOCK_POPULATION", "0")
    text = MINIMAL + "mock: {settings: {population: '500', max_sessions_per_account: 3}}\n"
    assert parse_scenario(text, "t.yaml").mock.settings["population"] == "500"


def test_behaviour_file_must_be_a_valid_profile(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("latency: {default: {dist: fixed, ms: -1}}\n")
    path = tmp_path / "s.yaml"
    path.write_text(MINIMAL + "mock:\n  behaviour: bad.yaml\n", encoding="utf-8")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:8: mock.behaviour: not a valid behaviour profile: ")
    assert f"{tmp_path / 'bad.yaml'}: latency.default.fixed.ms: Input should be greater" in message


def test_duplicate_keys_are_refused_naming_both_lines() -> None:
    text = "name: x\n" + MINIMAL + "load:\n  stages: [{duration_s: 10, users: 2, users: 3}]\n"
    assert _problems(text) == [
        "t.yaml:3: name: given twice (lines 1 and 3); keep one",
        "t.yaml:8: load: given twice (lines 5 and 8); keep one",
        "t.yaml:9: load.stages.0.users: given twice (lines 9 and 9); keep one",
    ]
