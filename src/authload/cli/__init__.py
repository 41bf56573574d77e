"""The `authload` command: parse, call, print. Exit codes: 0 pass, 1 failed, 2 bad input,
3 aborted or run error."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from authload.cli.capacity import CapacityCommand
from authload.cli.command import EXIT_ERROR, Command
from authload.cli.compare import CompareCommand
from authload.cli.mock import MockCommand
from authload.cli.openapi import OpenapiCommand
from authload.cli.report import ReportCommand
from authload.cli.run import RunCommand
from authload.cli.runs import RunsCommand
from authload.cli.smoke import SmokeCommand
from authload.cli.validate import ValidateCommand
from authload.cli.worker import WorkerCommand
from authload.errors import AuthloadError

# in the order `authload --help` lists them
COMMANDS: dict[str, Command] = {
    command.name: command
    for command in (
        MockCommand(),
        OpenapiCommand(),
        RunCommand(),
        WorkerCommand(),
        ValidateCommand(),
        ReportCommand(),
        SmokeCommand(),
        CompareCommand(),
        RunsCommand(),
        CapacityCommand(),
    )
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="authload", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS.values():
        command.add_arguments(sub.add_parser(command.name, help=command.help))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command].handle(args)
    except AuthloadError as exc:
        print(f"authload: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception:  # never exit 1 (an SLO failed) on a failure of authload itself
        import traceback

        traceback.print_exc()
        print("authload: error: an unexpected failure (above)", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_ERROR
