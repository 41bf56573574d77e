"""What runs inside Locust processes: clients, flows, users, shapes, recording and metrics.

Importing Locust monkey-patches the process with gevent, so only this package, the runner
and the locustfiles import it; the analysis layer and the mock never do.
"""
