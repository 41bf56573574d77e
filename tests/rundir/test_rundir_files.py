"""The run directory's JSON files, events and manifest: written as the readers expect them,
read back as models, and refused with the file, the line and the field when they are not."""

from __future__ import annotations

import json
import os
import typing
from pathlib import Path

import numpy as np
import pytest

from authload.errors import ResultsError
from authload.run.book import manifest
from authload.run.targets import resolve_target
from authload.rundir import files
from authload.rundir.events import (
    AbortEvent,
    Event,
    EventKind,
    FaultWindow,
    StageEvent,
    append_event,
    fault_event,
    read_events,
)
from authload.rundir.jsonfiles import read_json, write_json
from authload.rundir.manifest import SCHEMA_VERSION, DiedProcess, read_manifest, write_manifest
from authload.scenario.loader import load_scenario

REPO = Path(__file__).parents[2]


def test_write_json_is_atomic_utf8_and_strict_json(tmp_path: Path) -> None:
    path = tmp_path / files.MANIFEST_FILE
    write_json(path, {"scenario": "вход", "b": 1, "a": [1.5, None]})
    assert path.read_text(encoding="utf-8") == (
        '{\n  "scenario": "вход",\n  "b": 1,\n  "a": [\n    1.5,\n    null\n  ]\n}\n'
    )
    assert os.listdir(tmp_path) == [files.MANIFEST_FILE]  # no partial file left


def test_write_json_writes_a_missing_figure_as_null(tmp_path: Path) -> None:
    """JSON has no NaN or infinity: a figure that could not be measured reads as missing,
    whoever wrote it; numpy's numbers and tuples are plain JSON."""
    path = tmp_path / files.SUMMARY_FILE
    write_json(path, {"p99": float("nan"), "max": float("inf"), "n": np.int64(3), "q": (1, 2)})
    assert json.loads(path.read_text(encoding="utf-8")) == {
        "p99": None,
        "max": None,
        "n": 3,
        "q": [1, 2],
    }


def test_read_json_errors_are_results_errors(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match="missing"):
        read_json(tmp_path / files.SUMMARY_FILE)
    (tmp_path / files.SUMMARY_FILE).write_text("{", encoding="utf-8")
    with pytest.raises(ResultsError, match="unreadable"):
        read_json(tmp_path / files.SUMMARY_FILE)


def test_events_are_appended_as_json_lines_and_read_back_as_models(tmp_path: Path) -> None:
    assert read_events(tmp_path) == []
    append_event(tmp_path, StageEvent(stage=0, duration_s=60, users=10))
    append_event(tmp_path, AbortEvent(t=5.0, reason="error rate over 30%"))
    lines = (tmp_path / files.EVENTS_FILE).read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[1]) == {
        "t": 5.0,
        "kind": "abort",
        "reason": "error rate over 30%",
        "worker": None,
    }
    stage, abort = read_events(tmp_path)
    assert isinstance(stage, StageEvent) and stage.t > 1.7e9  # stamped when made
    assert (stage.stage, stage.users, stage.spawn_rate) == (0, 10, 10.0)
    assert abort == AbortEvent(t=5.0, reason="error rate over 30%")


def test_read_events_ignores_a_torn_last_line_only(tmp_path: Path) -> None:
    path = tmp_path / files.EVENTS_FILE
    path.write_text('{"t": 1, "kind": "abort", "reason": "x"}\n{"t": 2, "ki', encoding="utf-8")
    assert read_events(tmp_path) == [AbortEvent(t=1, reason="x")]
    path.write_text('{"t": 1, "kind": "abort", "reason": "x"}\nnot json\n', encoding="utf-8")
    with pytest.raises(ResultsError, match=r"events.jsonl:2: not a JSON line"):
        read_events(tmp_path)
    path.write_text("[1, 2]\n", encoding="utf-8")
    with pytest.raises(ResultsError, match="JSON object"):
        read_events(tmp_path)


def test_a_bad_event_names_the_line_and_what_is_wrong(tmp_path: Path) -> None:
    path = tmp_path / files.EVENTS_FILE
    path.write_text('{"t": 1, "kind": "start"}\n', encoding="utf-8")
    with pytest.raises(ResultsError, match=r"events.jsonl:1: unknown event kind 'start'; kinds: "):
        read_events(tmp_path)
    path.write_text('{"t": 1, "kind": "stage", "stage": 0}\n', encoding="utf-8")
    with pytest.raises(ResultsError, match=r"events.jsonl:1: stage event: duration_s: Field req"):
        read_events(tmp_path)


def test_every_kind_has_its_model() -> None:
    union = typing.get_args(typing.get_args(Event)[0])
    modelled = {model.model_fields["kind"].default for model in union}
    assert modelled == set(EventKind)


def test_the_mock_fault_history_round_trips_through_the_events() -> None:
    window = FaultWindow(t=3.0, event="end", fault="f1", kind="status", endpoints=["gigma.login"])
    event = fault_event(window)
    assert event.kind is EventKind.FAULT_END and event.fault_kind == "status"
    assert event.window() == window


def test_the_manifest_is_written_and_read_as_a_model(tmp_path: Path) -> None:
    scenario = load_scenario(REPO / "scenarios" / "smoke.yaml")
    written = manifest(scenario, resolve_target("mock"), processes=2)
    write_manifest(tmp_path, written)
    data = json.loads((tmp_path / files.MANIFEST_FILE).read_text(encoding="utf-8"))
    assert data["schema_version"] == SCHEMA_VERSION
    assert (data["status"], data["processes"], data["scenario"]["name"]) == ("running", 2, "smoke")
    assert "end" not in data  # not ended: no end, rather than a null to read around
    written.status, written.end = "completed", "2026-12-07T10:00:00.000+00:00"
    written.died = [DiedProcess(worker="w1")]
    write_manifest(tmp_path, written)
    read = read_manifest(tmp_path)
    assert read == written
    assert read.ended_at() is not None and read.ended_at().year == 2026  # type: ignore[union-attr]


def test_a_bad_manifest_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / files.MANIFEST_FILE
    path.write_text('{"scenario": {}, "target": "mock"}', encoding="utf-8")
    with pytest.raises(ResultsError, match=r"manifest.json: versions: Field required"):
        read_manifest(tmp_path)
    path.write_text("[1]", encoding="utf-8")
    with pytest.raises(ResultsError, match=r"manifest.json: not a JSON object"):
        read_manifest(tmp_path)
