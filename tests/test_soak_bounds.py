"""Nothing on the load side grows with run length (issue 21): each structure a long soak
fills is driven here by a fast synthetic load far past its bound and must stay at it.

Code that imports Locust runs in a fresh interpreter (``child_*``, see tests/locust_child.py).
"""

from __future__ import annotations

from tests import locust_child


def child_locust_statistics_stay_bounded_over_hours() -> None:
    from locust.stats import RequestStats

    from authload.load import locust_stats

    stats = RequestStats()
    start = int(stats.start_time) + 1  # Locust reads rates from its start on
    names = [f"endpoint.{i}" for i in range(9)]
    for second in range(start, start + 3 * 3600):  # three hours, 2 requests a second each
        for name in names:
            entry = stats.get(name, "POST")
            entry._log_time_of_request(second + 0.1)
            entry._log_time_of_request(second + 0.6)
            if second % 7 == 0:
                entry.num_fail_per_sec[second] += 1
        stats.total.num_reqs_per_sec[second] += 2 * len(names)
        stats.total.last_request_timestamp = second + 0.6
        if second % 5 == 0:
            stats.history.append({"time": second})
        if second % 30 == 0:
            locust_stats.trim(stats, second)
    for entry in (stats.total, *stats.entries.values()):
        assert len(entry.num_reqs_per_sec) <= locust_stats.KEEP_S + 30
        assert len(entry.num_fail_per_sec) <= (locust_stats.KEEP_S + 30) // 7 + 1
    assert stats.entries[("endpoint.0", "POST")].current_rps == 2.0  # still read correctly
    assert stats.total.current_rps == 18.0
    assert len(stats.history) <= locust_stats.MAX_POINTS
    times = [point["time"] for point in stats.history]
    assert times[0] < start + 5 and times[-1] > start + 3 * 3600 - 300, "the whole run, thinner"
    assert times == sorted(times)


def _child(main: str) -> None:
    result = locust_child.run_child("test_soak_bounds", main)
    assert result.returncode == 0, result.stdout + result.stderr


def test_locust_statistics_stay_bounded_over_hours() -> None:
    _child("child_locust_statistics_stay_bounded_over_hours")
