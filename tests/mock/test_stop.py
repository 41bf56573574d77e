"""The mock stops on shutdown even when its store no longer answers: a process that outlives
its SIGTERM is a leftover on the machine it tests from."""

from __future__ import annotations

import asyncio
import time

import pytest

from authload.mock import core
from authload.mock.settings import MockSettings
from authload.mock.store import MemoryStore


class _Unanswering(MemoryStore):
    """A store whose close never returns, as one whose server has gone mid-command."""

    async def close(self) -> None:
        await asyncio.Event().wait()


def test_stop_returns_though_the_store_never_closes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core, "STOP_S", 0.3)

    async def start_and_stop() -> float:
        mock = core.Mock(MockSettings(), store=_Unanswering())
        await mock.start()
        began = time.monotonic()
        await mock.stop()
        return time.monotonic() - began

    assert asyncio.run(asyncio.wait_for(start_and_stop(), 10.0)) < 2.0  # a hang fails in 10 s
