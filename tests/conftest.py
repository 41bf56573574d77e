"""The fixtures every test can use, registered as plugins: the programs the tests run
(``tools``), a real redis-server (``redis_server``) and a real mock (``mock_server``), all in
tests/helpers/. Test modules import helper functions and constants from tests.helpers, never
from here."""

pytest_plugins = [
    "pytester",
    "tests.helpers.tools",
    "tests.helpers.redis_server",
    "tests.helpers.mock_server",
]
