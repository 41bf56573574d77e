from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from authload.cli import options, render
from authload.cli.command import EXIT_PASS, Command
from authload.cli.compare import exit_code

if TYPE_CHECKING:
    from datetime import datetime

    from authload.analysis.history import RunIndex


class RunsCommand(Command):
    name = "runs"
    help = (
        "list the run directories under ROOT; --compare-latest: a scenario's latest run "
        "against the ones before it"
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "root", nargs="?", default="runs", help="where runs are (default runs/)"
        )
        parser.add_argument("--scenario", help="only this scenario's runs")
        parser.add_argument("--target", help="only runs on this target")
        parser.add_argument(
            "--since",
            metavar="WHEN",
            help="only runs started since: 2025-06-01[T12:00Z], or 12h, 7d",
        )
        parser.add_argument(
            "--verdict",
            action="append",
            choices=["pass", "fail", "aborted", "error", "running"],
            help="only runs with this verdict (repeatable; with --compare-latest: the baseline's)",
        )
        parser.add_argument("--json", action="store_true", help="print as JSON")
        parser.add_argument(
            "--compare-latest",
            metavar="SCENARIO",
            help="compare the scenario's latest finished run with the ones before it (exit 1 "
            "on a regression)",
        )
        parser.add_argument(
            "--last",
            type=int,
            default=5,
            metavar="N",
            help="baseline: the N finished runs of the same scenario and target before the "
            "latest, records pooled (default 5)",
        )
        options.add_comparison_options(parser)

    def handle(self, args: argparse.Namespace) -> int:
        from authload.analysis.history import index_runs, parse_since

        index = index_runs(args.root)
        since = parse_since(args.since) if args.since else None
        for skipped in index.skipped:
            print(f"authload: skipped {skipped.path}: {skipped.reason}", file=sys.stderr)
        if args.compare_latest is None:
            return _list(args, index, since)
        return _compare_latest(args, index, since)


def _list(args: argparse.Namespace, index: RunIndex, since: datetime | None) -> int:
    found = index.filter(args.scenario, args.target, since, args.verdict)
    if args.json:
        print(json.dumps(found.to_dict(), indent=2, ensure_ascii=False, allow_nan=False))
    else:
        render.print_runs(found, len(index.runs))
    return EXIT_PASS


def _compare_latest(args: argparse.Namespace, index: RunIndex, since: datetime | None) -> int:
    from authload.analysis.history import compare_latest

    options.check_comparison_options(args)
    result = compare_latest(
        index.filter(since=since),
        args.compare_latest,
        target=args.target,
        last=args.last,
        baseline_verdicts=args.verdict,
        tolerance=args.tolerance,
        confidence=args.confidence,
        error_tolerance_pp=args.error_tolerance,
        floor_ms=args.floor,
    )
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False, allow_nan=False))
    else:
        render.print_latest(result)
        render.print_comparison(result.comparison)
    return exit_code(result.comparison)
