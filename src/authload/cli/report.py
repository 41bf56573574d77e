from __future__ import annotations

import argparse
from pathlib import Path

from authload.cli import options, render
from authload.cli.command import EXIT_ERROR, EXIT_FAIL, EXIT_PASS, Command


class ReportCommand(Command):
    name = "report"
    help = "write RUN_DIR/report.html, print the verdict"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("run_dir", metavar="RUN_DIR", help="a run directory")
        options.add_verdict_outputs(parser)

    def handle(self, args: argparse.Namespace) -> int:
        from authload.analysis.report import write_report
        from authload.errors import InputError, ResultsError
        from authload.run.salvage import salvage
        from authload.rundir.summary import read_summary
        from authload.verdict_formats.commands import for_run

        destinations = options.destinations(args)
        run_dir = Path(args.run_dir)
        try:
            if salvage(run_dir):
                print(f"authload: {args.run_dir}: the run never finished; summarized what it left")
            path = write_report(run_dir)
            summary = read_summary(run_dir)
        except ResultsError as exc:  # not a (finished) run directory: bad input
            raise InputError(str(exc)) from exc
        print(f"report: {path}")
        render.print_drift(summary)
        print(f"verdict: {summary.verdict.upper()}")
        for_run(destinations, run_dir, summary)
        return {"pass": EXIT_PASS, "fail": EXIT_FAIL}.get(summary.verdict, EXIT_ERROR)
