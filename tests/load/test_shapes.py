"""Open-model arrival schedules over N processes: interleaved, exact in total, never two
processes at one instant. ``authload.load.shapes`` imports Locust, so the checks run in a
fresh interpreter (``child_*``, see ``tests/helpers/locust_child.py``)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from authload.scenario.model import Load
from tests.helpers import locust_child
from tests.helpers.runs import run_scenario


def _load(*stages: tuple[float, float]) -> Load:
    return Load.model_validate(
        {"model": "open", "stages": [{"duration_s": d, "rate": r} for d, r in stages]}
    )


STAGES = [(30.0, 1.0), (10.0, 7.5), (4.0, 0.3), (5.0, 0.0), (2.0, 100.0)]


def child_totals_are_exact_over_processes() -> None:
    from authload.load.shapes import arrival_times

    load = _load(*STAGES)
    expected = sum(math.ceil(d * r - 1e-9) for d, r in STAGES)
    for processes in (1, 2, 3, 16, 64, 200):
        total = sum(len(list(arrival_times(load, 0.0, processes, i))) for i in range(processes))
        assert total == expected, (processes, total, expected)
    # 16 processes at 1/s for 30 s: 30 arrivals, not 32 (64 processes: not 64)
    one = _load((30.0, 1.0))
    for processes in (16, 64):
        total = sum(len(list(arrival_times(one, 0.0, processes, i))) for i in range(processes))
        assert total == 30, (processes, total)


def child_processes_never_share_an_instant() -> None:
    from authload.load.shapes import arrival_times

    load = _load(*STAGES)
    start = 1_000.0
    for processes in (2, 3, 16):
        mine = [list(arrival_times(load, start, processes, i)) for i in range(processes)]
        every = sorted(t for times in mine for t in times)
        assert len(set(every)) == len(every), processes
        assert every == sorted(arrival_times(load, start)), "the union is the one schedule"
        # each stage starts with one arrival (process 0's), not one per process
        for i, times in enumerate(mine):
            assert (start in times) == (i == 0)


def child_one_process_is_unchanged() -> None:
    from authload.load.shapes import arrival_times

    times = list(arrival_times(_load((2.0, 2.0), (1.0, 3.0)), 10.0))
    expected = [10.0, 10.5, 11.0, 11.5, 12.0, 12.0 + 1 / 3, 12.0 + 2 / 3]
    assert times == pytest.approx(expected)
    assert list(arrival_times(_load((2.0, 2.0)), 0.0, 1, 0)) == [0.0, 0.5, 1.0, 1.5]


@pytest.mark.parametrize(
    "main",
    [
        "child_totals_are_exact_over_processes",
        "child_processes_never_share_an_instant",
        "child_one_process_is_unchanged",
    ],
)
def test_arrival_schedule(main: str) -> None:
    result = locust_child.run_child(__name__, main)
    assert result.returncode == 0, result.stdout + result.stderr


OPEN_TWO = """
name: open-two
accounts: {count: 50}
mix: {lkfl: 1}
load:
  model: open
  stages: [{duration_s: 3, rate: 1.5}]
think_time: {dist: fixed, ms: 10}
flows:
  lkfl: {wrong_password_share: 0}
retry: {policy: none}
mock: {behaviour: {}}
"""


@pytest.mark.integration
def test_two_processes_make_the_stages_arrivals_exactly_and_interleaved(tmp_path: Path) -> None:
    run = run_scenario(tmp_path, OPEN_TWO, "--processes", "2", load_s=3)
    assert run.code == 0, run.describe()
    first = run.records.sort_values("t").groupby("flow_id").first()
    assert len(first) + run.outcomes.get("dropped_arrivals", 0) == 5  # ceil(3 x 1.5), not 6
    by_worker = first.groupby("worker").size().to_dict()
    assert by_worker == {"w0": 3, "w1": 2}, by_worker
