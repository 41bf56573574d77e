from __future__ import annotations

import argparse
import json
from pathlib import Path

from authload.cli import options
from authload.cli.command import Command


class CapacityCommand(Command):
    name = "capacity"
    help = "find the highest arrival rate meeting the SLOs (--closed: steps of users, USL fit)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("scenario", help="scenario YAML file (its mix, SLOs, abort rule)")
        parser.add_argument(
            "--closed", action="store_true", help="steps of users instead, and a USL fit"
        )
        _add_search(parser)
        options.add_target_options(
            parser,
            target_help="mock, beta or a name from --targets",
            out_help="where it goes (default runs/)",
        )
        options.add_confirm(parser, "allow a shared target")
        parser.add_argument(
            "--verbose", action="store_true", help="the steps' own output on stderr too"
        )
        parser.add_argument("--json", action="store_true", help="print capacity.json")
        options.add_verdict_outputs(parser)

    def handle(self, args: argparse.Namespace) -> int:
        from authload.capacity.document import describe
        from authload.capacity.driver import run_capacity
        from authload.capacity.options import CapacityOptions

        options.check_out(Path(args.out))
        destinations = options.destinations(args)
        search = CapacityOptions(
            closed=args.closed,
            start=args.start,
            factor=args.factor,
            maximum=args.maximum,
            precision=args.precision,
            budget_s=args.budget,
            step_s=args.step,
            warmup_s=args.warmup,
            target=args.target,
            targets_file=args.targets,
            out=args.out,
            processes=args.processes,
            confirm=args.confirm,
            verbose=args.verbose,
        )
        result = run_capacity(args.scenario, search)
        from authload.verdict_formats.commands import for_capacity

        for_capacity(destinations, result.directory, result.document)
        if args.json:
            print(json.dumps(result.document.model_dump(mode="json"), indent=2, ensure_ascii=False))
            return result.exit_code
        print(f"capacity run directory: {result.directory}")
        for line in describe(result.document):
            print(line)
        return result.exit_code


def _add_search(parser: argparse.ArgumentParser) -> None:
    """The levels tried and how long each step is."""
    parser.add_argument(
        "--start",
        type=float,
        help="first level: arrivals/s (default the scenario's peak rate, else 5) or users (1)",
    )
    parser.add_argument("--factor", type=float, help="step-up multiplier (default 1.5; --closed 2)")
    parser.add_argument(
        "--max", type=float, dest="maximum", help="highest level tried (--closed default 64)"
    )
    parser.add_argument(
        "--precision",
        type=float,
        default=0.05,
        help="stop when last pass and first fail are within this (default 0.05: 5%%)",
    )
    parser.add_argument(
        "--budget", type=float, default=1800.0, metavar="SECONDS", help="time budget (1800)"
    )
    parser.add_argument(
        "--step", type=float, default=60.0, metavar="SECONDS", help="each step (default 60)"
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=15.0,
        metavar="SECONDS",
        help="start of each step left out of the judgement (default 15)",
    )
