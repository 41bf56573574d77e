"""The report's address on Locust's web UI, and the page that waits for it: shared by
Locust's side (:mod:`authload.load.web_ui`, while Locust runs) and the runner's report
server (:mod:`authload.run.ui`, once Locust has quit), so the link works throughout."""

from __future__ import annotations

import html

UI_ENV = "AUTHLOAD_UI"  # set to 1 for a Locust process whose runner serves the report after it
REPORT_PATH = "/authload/report"
STATE_PATH = "/authload/state"
WRITING = "The test has stopped: authload is writing the summary, the report and the verdict."


def waiting_page(run_name: str, note: str) -> str:
    """What the report's link shows until the report is written: it asks ``/authload/state``
    every 2 s (through Locust's end and the runner's start, when nothing answers for a
    moment) and shows the report once it is ready."""
    script = (
        "setInterval(function () { fetch('" + STATE_PATH + "', {cache: 'no-store'})"
        ".then(function (r) { return r.json(); })"
        ".then(function (s) { if (s.report_ready) { location.reload(); } })"
        ".catch(function () {}); }, 2000);"
    )
    return (
        '<!doctype html><html><head><meta charset="utf-8">'
        f"<title>authload: {html.escape(run_name)}</title></head><body>"
        f"<h1>authload: {html.escape(run_name)}</h1><p>{html.escape(note)}</p>"
        "<p>This page shows the report once it is written.</p>"
        f"<script>{script}</script></body></html>"
    )
