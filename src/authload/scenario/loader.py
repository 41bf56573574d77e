"""Scenario files on disk: YAML read into a :class:`~authload.scenario.model.Scenario`, every
problem named with the file, the line, the field and what is allowed, e.g.
``scenarios/x.yaml:12: load.stages.1.users: Input should be >= 0``. Besides the schema:
duplicate keys, non-finite numbers, and the scenario's ``mock`` section checked with the
mock's own settings and profile models, so a run never starts on what the mock would refuse.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from pydantic import ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from authload.errors import ProfileError, ScenarioError
from authload.mock.profile import Profile, load_profile
from authload.mock.settings import MockSettings
from authload.scenario.model import MockSetup, Scenario

__all__ = ["load_scenario", "parse_scenario"]


class _GivenSettings(MockSettings):
    """The mock's settings from the values given (a scenario's ``mock.settings``) alone: the
    environment of the process validating the scenario is not the embedded mock's."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


class _Problem(NamedTuple):
    line: int  # 0: unknown
    field: str
    message: str  # naming the file, the line and the field


_Loc = list[str | int]
_FLOAT_TAG = "tag:yaml.org,2002:float"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_PATH_FIRST = re.compile(r"^([A-Za-z_]\w*(?:\.\w+)*): (.+)$", re.DOTALL)
_TAGS = {"refresh_storm", "mass_logout", "fixed", "uniform", "lognormal", "[key]"}


def parse_scenario(text: str, source: str, base_dir: Path | None = None) -> Scenario:
    """Validate YAML text; a ScenarioError names ``source``, the line and the field.
    ``base_dir``: where a ``mock.behaviour`` file is looked for (no file is read without it)."""
    node, data = _read_yaml(text, source)
    problems = _non_finite(node, source)
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        more = [_explain(err, node, source) for err in exc.errors()]
        raise _error(problems + [p for p in more if not _same_field(p, problems)]) from None
    if problems:
        raise _error(problems)
    mock, problems = _check_mock(scenario.mock, node, source, base_dir)
    if problems:
        raise _error(problems)
    return scenario if mock is scenario.mock else scenario.model_copy(update={"mock": mock})


def load_scenario(path: str | Path) -> Scenario:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read the scenario: {exc.strerror}") from None
    return parse_scenario(text, str(path), base_dir=path.parent)


def _read_yaml(text: str, source: str) -> tuple[yaml.Node, dict[str, Any]]:
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(data, dict) or node is None:
        raise ScenarioError(f"{source}: a scenario is a mapping of fields (name, mix, load, ...)")
    duplicates = _duplicate_keys(node, source)
    if duplicates:
        raise _error(duplicates)
    return node, data


def _same_field(problem: _Problem, others: list[_Problem]) -> bool:
    """Already said of this field (nan also fails ``>= 0``: say it once)."""
    return any(f"{problem.field}.".startswith(f"{o.field}.") for o in others)


def _error(problems: list[_Problem]) -> ScenarioError:
    """One line per problem, in the order of the file, each once."""
    unique = dict.fromkeys(p.message for p in sorted(problems, key=lambda p: p.line))
    return ScenarioError("\n".join(unique))


def _at(source: str, line: int | None) -> str:
    return f"{source}:{line}" if line else source


def _nodes(
    node: yaml.Node, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], yaml.Node]]:
    """Every node under ``node`` with its path of keys and indexes (aliases followed once)."""
    stack: list[tuple[tuple[str, ...], yaml.Node, frozenset[int]]] = [(path, node, frozenset())]
    while stack:
        here, current, ancestors = stack.pop()
        yield here, current
        if id(current) in ancestors:
            continue
        inner = ancestors | {id(current)}
        if isinstance(current, yaml.MappingNode):
            for key, value in reversed(current.value):
                stack.append(((*here, str(key.value)), value, inner))
        elif isinstance(current, yaml.SequenceNode):
            for i, value in reversed(list(enumerate(current.value))):
                stack.append(((*here, str(i)), value, inner))


def _duplicate_keys(root: yaml.Node, source: str) -> list[_Problem]:
    problems: list[_Problem] = []
    for path, node in _nodes(root):
        if not isinstance(node, yaml.MappingNode):
            continue
        first: dict[str, int] = {}
        for key, _ in node.value:
            if key.tag == _MERGE_TAG:
                continue
            name, line = str(key.value), key.start_mark.line + 1
            if name in first:
                field = ".".join((*path, name))
                message = f"given twice (lines {first[name]} and {line}); keep one"
                problems.append(_Problem(line, field, f"{_at(source, line)}: {field}: {message}"))
            else:
                first[name] = line
    return problems


def _non_finite(root: yaml.Node, source: str) -> list[_Problem]:
    """``.inf`` and ``.nan`` anywhere, distributions and the inline mock included."""
    problems: list[_Problem] = []
    constructor = yaml.constructor.SafeConstructor()
    for path, node in _nodes(root):
        if not (isinstance(node, yaml.ScalarNode) and node.tag == _FLOAT_TAG):
            continue
        try:
            finite = math.isfinite(constructor.construct_yaml_float(node))
        except ValueError:
            continue  # not a number at all: the schema says what it should be
        if not finite:
            line = node.start_mark.line + 1
            field = ".".join(path) or "scenario"
            message = f"{_at(source, line)}: {field}: must be a finite number"
            problems.append(_Problem(line, field, message))
    return problems


def _check_mock(
    mock: MockSetup, node: yaml.Node, source: str, base_dir: Path | None
) -> tuple[MockSetup, list[_Problem]]:
    """The mock's settings and behaviour, checked with the mock's own models."""
    problems = _settings_problems(mock.settings, node, source)
    behaviour = mock.behaviour
    if isinstance(behaviour, dict):
        problems += _profile_problems(behaviour, node, source)
    elif isinstance(behaviour, str) and behaviour != "default" and base_dir is not None:
        resolved, file_problems = _profile_file(behaviour, base_dir, node, source)
        problems += file_problems
        if resolved is not None:
            mock = mock.model_copy(update={"behaviour": resolved})
    return mock, problems


def _settings_problems(settings: dict[str, Any], node: yaml.Node, source: str) -> list[_Problem]:
    prefix: _Loc = ["mock", "settings"]
    if "behaviour" in settings:
        line = _line_of(node, [*prefix, "behaviour"])
        field = "mock.settings.behaviour"
        return [_Problem(line or 0, field, f"{_at(source, line)}: {field}: use mock.behaviour")]
    try:
        _GivenSettings.model_validate(settings)
    except ValidationError as exc:
        allowed = ", ".join(n for n in MockSettings.model_fields if n != "behaviour")
        problems = []
        for err in exc.errors():
            problem = _explain(err, node, source, prefix)
            if err["type"] == "extra_forbidden":
                text = problem.message.replace(
                    "unknown field", f"unknown setting; allowed: {allowed}"
                )
                problem = problem._replace(message=text)
            problems.append(problem)
        return problems
    return []


def _profile_problems(behaviour: dict[str, Any], node: yaml.Node, source: str) -> list[_Problem]:
    try:
        Profile.model_validate(behaviour)
    except ValidationError as exc:
        return [_explain(err, node, source, ["mock", "behaviour"]) for err in exc.errors()]
    return []


def _profile_file(
    name: str, base_dir: Path, node: yaml.Node, source: str
) -> tuple[str | None, list[_Problem]]:
    """The profile file ``name`` (relative to the scenario) resolved, if it is a valid one."""
    line = _line_of(node, ["mock", "behaviour"]) or 0
    field = "mock.behaviour"
    where = f"{_at(source, line)}: {field}"
    resolved = (base_dir / name).resolve()
    if not resolved.is_file():
        message = f"{where}: no such file {name!r} (looked for {resolved})"
        return None, [_Problem(line, field, message)]
    try:
        load_profile(resolved)
    except ProfileError as exc:
        return None, [_Problem(line, field, f"{where}: not a valid behaviour profile: {exc}")]
    return str(resolved), []


def _explain(
    error: Any, node: yaml.Node | None, source: str, prefix: Sequence[str | int] = ()
) -> _Problem:
    loc: _Loc = [*prefix, *_field_path(error["loc"])]
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "value_error":  # a cross-field check starts with the field it names
        loc, message = _named_field(loc, message)
    field = ".".join(str(p) for p in loc) or "scenario"
    line = _line_of(node, loc)
    return _Problem(line or 0, field, f"{_at(source, line)}: {field}: {_describe(error, message)}")


def _field_path(loc: tuple[Any, ...]) -> _Loc:
    """Pydantic's location without its validator and union-tag steps."""
    return [
        p for p in loc if not (isinstance(p, str) and (p.startswith("function-") or p in _TAGS))
    ]


def _named_field(loc: _Loc, message: str) -> tuple[_Loc, str]:
    match = _PATH_FIRST.match(message)
    if match is None:
        return loc, message
    path: _Loc = [int(p) if p.isdigit() else p for p in match.group(1).split(".")]
    return [*loc, *path], match.group(2)


def _describe(error: Any, message: str) -> str:
    ctx = error.get("ctx") or {}
    if error["type"] == "extra_forbidden":
        return "unknown field"
    if error["type"] == "literal_error":
        return f"must be one of {ctx.get('expected')}"
    if error["type"] == "union_tag_invalid":
        return f"must be one of {ctx.get('expected_tags')}"
    if error["type"] == "missing":
        return "required"
    if error["type"] == "finite_number":
        return "must be a finite number"
    return message


def _line_of(node: yaml.Node | None, loc: _Loc) -> int | None:
    """1-based line of the deepest YAML node on the path ``loc``."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if str(k.value) == str(part)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            match = node.value[part] if part < len(node.value) else None
        else:
            match = None
        if match is None:
            break
        node = match
        line = node.start_mark.line + 1
    return line
