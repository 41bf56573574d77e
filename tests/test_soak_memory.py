"""bench/soak_memory keeps its samples while it runs (--json), and --report fits a saved file,
also one of a run stopped before its end."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))  # its scripts import each other by name

import soak_memory  # noqa: E402
from soak_figures import Sample  # noqa: E402


def _saved(tmp_path: Path, locust_mb_h: float, minutes: int) -> Path:
    """Samples every minute: Locust 140 MB growing ``locust_mb_h``, the mock flat at 76 MB."""
    samples = [
        Sample(60.0 * m, int((140 + locust_mb_h * m / 60) * 1024), 76 * 1024, 0.5 * m)
        for m in range(minutes + 1)
    ]
    path = tmp_path / "soak.json"
    doc = {"minutes": 180, "warmup_minutes": 10, "scenario": "release-gate.yaml",
           "complete": False, "samples": [vars(s) for s in samples]}  # fmt: skip
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize(("mb_h", "verdict"), [(0.5, "PASS"), (3.0, "FAIL")])
def test_a_stopped_run_is_fitted_up_to_its_last_sample(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], mb_h: float, verdict: str
) -> None:
    assert soak_memory.main(["--report", str(_saved(tmp_path, mb_h, 164))]) == 0
    out = capsys.readouterr().out
    assert "stopped before its end, at 164 min" in out
    assert f"growth, minute 82-164 (MB/h)     {mb_h:+.2f}     +0.00" in out
    assert f"Locust growth {mb_h:+.2f} MB/h   goal <= 1 MB/h   {verdict}" in out


def test_a_file_too_short_to_fit_or_not_a_soak_is_refused(tmp_path: Path) -> None:
    assert soak_memory.main(["--report", str(_saved(tmp_path, 0.5, 15))]) == 3
    (tmp_path / "other.json").write_text('{"rows": 3}')
    assert soak_memory.main(["--report", str(tmp_path / "other.json")]) == 2


def test_the_checkpoint_is_the_document_without_figures(tmp_path: Path) -> None:
    args = soak_memory.parse_args(["--minutes", "30", "--json", str(tmp_path / "s.json")])
    soak = soak_memory.Soak(samples=[Sample(0.0, 1024, 2048, 0.0)])
    soak_memory.write_document(args.json, soak_memory.document(args, soak, None))
    doc = json.loads(args.json.read_text())
    assert (doc["complete"], doc["figures"], doc["samples"][0]["mock_kb"]) == (False, None, 2048)
    assert not list(tmp_path.glob(".*partial"))
