from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from authload.cli import options, render
from authload.cli.command import EXIT_FAIL, EXIT_PASS, Command

if TYPE_CHECKING:
    from authload.analysis.compare import Comparison


class CompareCommand(Command):
    name = "compare"
    help = "compare two runs per endpoint: deltas with confidence, verdict"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("base", metavar="BASE_RUN", help="run directory of the baseline")
        parser.add_argument("candidate", metavar="CANDIDATE_RUN", help="run directory to judge")
        options.add_comparison_options(parser)
        parser.add_argument("--json", action="store_true", help="print the comparison as JSON")
        options.add_verdict_outputs(parser)

    def handle(self, args: argparse.Namespace) -> int:
        from authload.analysis.compare import load_setup, setup_differences

        options.check_comparison_options(args)
        destinations = options.destinations(args)
        result = _compare(args)
        warnings = setup_differences(load_setup(args.base), load_setup(args.candidate))
        from authload.verdict_formats.commands import for_comparison

        if args.json:
            data = {
                "base": args.base,
                "candidate": args.candidate,
                "warnings": warnings,
                **result.to_dict(),
            }
            print(json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False))
        else:
            print(f"base {args.base}, candidate {args.candidate}")
            for warning in warnings:
                print(f"warning: {warning}: their figures measure different things")
            render.print_comparison(result)
        for_comparison(destinations, Path(args.base), Path(args.candidate), result.to_dict())
        return exit_code(result)


def _compare(args: argparse.Namespace) -> Comparison:
    from authload.analysis.compare import compare_runs, load_run_records
    from authload.analysis.query import Journeys
    from authload.errors import InputError, ResultsError

    try:
        base, candidate = load_run_records(args.base), load_run_records(args.candidate)
        journeys = (Journeys.of_run(Path(args.base)), Journeys.of_run(Path(args.candidate)))
        return compare_runs(
            base,
            candidate,
            tolerance=args.tolerance,
            confidence=args.confidence,
            error_tolerance_pp=args.error_tolerance,
            floor_ms=args.floor,
            journeys=journeys,
        )
    except ResultsError as exc:  # a directory that is not a (finished) run is bad input
        raise InputError(str(exc)) from exc


def exit_code(result: Comparison) -> int:
    """1 on a regression (compare, runs --compare-latest)."""
    from authload.analysis.compare import REGRESSION

    return EXIT_FAIL if result.verdict == REGRESSION else EXIT_PASS
