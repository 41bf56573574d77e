"""A scenario's users in Locust's own web UI, against a mock you started yourself:

    ./run authload mock --port 8080 &
    AUTHLOAD_SCENARIO=scenarios/smoke.yaml ./run locust -f locustfiles/scenario.py

Then open http://127.0.0.1:8089 and start: the scenario's stages drive the load (as a Locust
shape), with its flows, events, retry policy and think times; records go to runs/ui-<time>/
(`authload run` is what also writes the summary and verdict).
AUTHLOAD_MOCK_URL (default http://127.0.0.1:8080) names the mock.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from authload.runconfig import APP_TOKEN_ENV, CLIENT_SECRET_ENV, CONFIG_ENV, RunConfig
from authload.scenario import load_scenario

_mock = os.environ.get("AUTHLOAD_MOCK_URL", "http://127.0.0.1:8080").rstrip("/")
_scenario = load_scenario(os.environ.get("AUTHLOAD_SCENARIO", "scenarios/smoke.yaml"))
_run_dir = Path("runs") / time.strftime("ui-%Y%m%dT%H%M%S")
_run_dir.mkdir(parents=True, exist_ok=True)
_config = Path(tempfile.mkdtemp(prefix="authload-ui-")) / "config.json"
_config.write_text(
    json.dumps(RunConfig(_scenario, _run_dir, "mock", _mock, _mock, _mock).to_json()),
    encoding="utf-8",
)
os.environ[CONFIG_ENV] = str(_config)
os.environ.setdefault(APP_TOKEN_ENV, "mock-app-token")
os.environ.setdefault(CLIENT_SECRET_ENV, "mock-client-secret")

from authload.load.locustfile import *  # noqa: E402, F403 - the users, listeners and shape
