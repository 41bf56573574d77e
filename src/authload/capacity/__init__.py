"""`authload capacity`: find the highest arrival rate of a scenario's traffic mix that meets
its SLOs, or (``closed``) measure throughput over steps of users and fit the Universal
Scalability Law.

The modules:

- :mod:`~authload.capacity.options`: the settings, refused when unusable, and their defaults;
- :mod:`~authload.capacity.search`: the next level, by an open or a closed-model strategy;
- :mod:`~authload.capacity.stops`: what ends a search from outside it (budget, failed step);
- :mod:`~authload.capacity.driver`: runs the steps and keeps the books;
- :mod:`~authload.capacity.document`: ``capacity.json``'s content, and the lines printed;
- :mod:`~authload.capacity.judge`: a step judged on its measured window;
- :mod:`~authload.capacity.curve`: the knee and the first SLO to break;
- :mod:`~authload.capacity.usl`: the Universal Scalability Law fit;
- :mod:`~authload.capacity.page`: ``capacity.html``.

Apart from the file names (:mod:`~authload.capacity.files`), the names below are imported on
first use, not with the package: the maths pulls in pandas and SciPy, and what only reads a
capacity run directory (the run history, the verdict formats) should not pay for them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from authload.capacity.files import CAPACITY_FILE, CAPACITY_LOG, CAPACITY_REPORT_FILE

if TYPE_CHECKING:
    from authload.capacity.document import describe
    from authload.capacity.driver import CapacityResult, run_capacity
    from authload.capacity.options import CapacityOptions
    from authload.capacity.search import step_scenario

__all__ = [
    "CAPACITY_FILE",
    "CAPACITY_LOG",
    "CAPACITY_REPORT_FILE",
    "CapacityOptions",
    "CapacityResult",
    "describe",
    "run_capacity",
    "step_scenario",
]

_HOME = {
    "CapacityOptions": "options",
    "CapacityResult": "driver",
    "describe": "document",
    "run_capacity": "driver",
    "step_scenario": "search",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # once: later look-ups find it without coming here
    return value
