"""What several test modules share: fixtures (the pytest plugins that tests/conftest.py
registers: ``tools``, ``redis_server``, ``mock_server``) and plain functions, classes and
constants that test modules import by name (``runs``, ``ui_runs``, ``locust_child``, and the
names of ``mock_server`` that are not fixtures)."""
