from __future__ import annotations

import argparse
import sys

from authload.cli.command import EXIT_INPUT, EXIT_PASS, Command


class ValidateCommand(Command):
    name = "validate"
    help = "check scenario files without running them"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("scenarios", nargs="+", metavar="SCENARIO")

    def handle(self, args: argparse.Namespace) -> int:
        from authload.errors import ScenarioError
        from authload.scenario.loader import load_scenario

        failed = 0
        for path in args.scenarios:
            try:
                scenario = load_scenario(path)
            except ScenarioError as exc:
                failed += 1
                print(exc, file=sys.stderr)
                continue
            print(
                f"{path}: ok ({scenario.name}, {scenario.duration_s:g} s, "
                f"{scenario.load.model} model)"
            )
        return EXIT_INPUT if failed else EXIT_PASS
