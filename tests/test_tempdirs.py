"""Temporary directories left by a process killed outright are removed by the next process
that makes one of their kind; a living owner's, or another host's, never."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from authload import tempdirs


@pytest.fixture
def tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(tempdirs.tempfile, "tempdir", str(tmp_path))
    return tmp_path


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_dead_owners_directory_goes_and_a_living_or_foreign_one_stays(tmp: Path) -> None:
    host = tempdirs._host()
    dead = tmp / f"authload-run-{host}-{_dead_pid()}-abc"
    living = tmp / f"authload-run-{host}-{os.getpid()}-def"
    foreign = tmp / f"authload-run-otherhost-{_dead_pid()}-ghi"
    other_kind = tmp / f"authload-locust-{host}-{_dead_pid()}-jkl"
    for path in (dead, living, foreign, other_kind):
        path.mkdir()
        (path / "config.json").write_text("{}")
    made = tempdirs.owned_dir("authload-run-")
    assert made.parent == tmp and made.name.startswith(f"authload-run-{host}-{os.getpid()}-")
    assert not dead.exists()
    assert living.exists() and foreign.exists() and other_kind.exists()


def test_the_block_removes_its_own_directory(tmp: Path) -> None:
    with tempdirs.owned_temp_dir("authload-run-") as path:
        (path / "config.json").write_text("{}")
    assert not path.exists()
