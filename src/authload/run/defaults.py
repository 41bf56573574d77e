"""Defaults of a run's options, in a module that imports nothing: the CLI shows them in its
help without importing the runner (about 300 ms)."""

DEFAULT_MASTER_PORT = 5557  # Locust's
DEFAULT_WORKERS_TIMEOUT_S = 300  # a distributed run's master waits this long for its workers
DEFAULT_MASTER_TIMEOUT_S = 300  # a worker waits this long for its master (Locust's 60 x 5 s)
DEFAULT_UI_PORT = 8089  # Locust's
DEFAULT_LINGER_S = 300.0  # the web UI serves the report this long after the run
