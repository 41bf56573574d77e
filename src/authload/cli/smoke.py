from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from authload.cli import render
from authload.cli.command import EXIT_FAIL, EXIT_PASS, Command

if TYPE_CHECKING:
    from authload.run.smoke import Step


class SmokeCommand(Command):
    name = "smoke"
    help = "drive every endpoint once on a mock, check contracts"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--url", help="a running mock (default: start an embedded one)")
        parser.add_argument("--json", action="store_true", help="print the result as JSON")

    def handle(self, args: argparse.Namespace) -> int:
        from authload.mock.server import EmbeddedMock
        from authload.mock.settings import load_settings
        from authload.run.smoke import run_smoke

        settings = load_settings()
        if args.url:
            steps = run_smoke(args.url, settings.app_token, settings.client_secret)
            url = args.url
        else:
            with EmbeddedMock() as mock:
                url = mock.url
                print(f"embedded mock on {url}", file=sys.stderr)
                steps = run_smoke(url, settings.app_token, settings.client_secret)
        from authload.contracts import ENDPOINTS

        passed = all(s.ok for s in steps) and {s.endpoint for s in steps} == set(ENDPOINTS)
        if args.json:
            print(json.dumps(_as_json(url, passed, steps), indent=2))
        else:
            render.print_smoke(steps, passed)
        return EXIT_PASS if passed else EXIT_FAIL


def _as_json(url: str, passed: bool, steps: list[Step]) -> dict[str, Any]:
    return {
        "url": url,
        "passed": passed,
        "steps": [
            {
                "endpoint": s.endpoint,
                "status": s.status,
                "latency_ms": round(s.latency_ms, 3),
                "problem": s.problem,
            }
            for s in steps
        ],
    }
