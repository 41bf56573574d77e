"""What runs inside Locust processes: clients, flows, users, shapes, recording and metrics.

Importing Locust monkey-patches the process with gevent, so only this package, the
locustfiles and ``authload.run.plain_locust`` (which runs inside a plain ``locust -f`` process)
import it; the analysis layer and the mock never do (``tests/test_layering.py`` checks).
"""
