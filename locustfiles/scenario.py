"""A scenario in plain Locust, its web UI or headless, against a mock you started yourself or
any target of a targets file, with `authload run`'s safety rules:

    ./run authload mock --port 8080 &
    AUTHLOAD_SCENARIO=scenarios/smoke.yaml ./run locust -f locustfiles/scenario.py
    AUTHLOAD_TARGET=stage AUTHLOAD_TARGETS_FILE=targets.yaml AUTHLOAD_CONFIRM=1 \\
        ./run locust -f locustfiles/scenario.py --headless

Then open http://127.0.0.1:8089 and start: the scenario's stages drive the load (as a Locust
shape), with its flows, events, retry policy and think times; its records go to
runs/<time>-<scenario>/. The variables are described in ``authload.run.plain_locust``.
`authload run SCENARIO --ui` is the same UI with the summary, report and verdict.
"""

from __future__ import annotations

import os
import sys

from authload.run.plain_locust import install

install(os.environ, sys.argv)  # before the locustfile below reads the run's configuration

from authload.load.locustfile import *  # noqa: E402, F403 - the users, listeners and shape
