from __future__ import annotations

import argparse
from pathlib import Path

from authload.cli import options, render
from authload.cli.command import Command
from authload.run.defaults import (
    DEFAULT_LINGER_S,
    DEFAULT_MASTER_PORT,
    DEFAULT_UI_PORT,
    DEFAULT_WORKERS_TIMEOUT_S,
)


class RunCommand(Command):
    name = "run"
    help = "run a scenario, write a run directory, print the verdict"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("scenario", help="scenario YAML file")
        options.add_target_options(
            parser,
            target_help="mock, beta or a name from --targets (default: the scenario's)",
            out_help="where run directories go (default runs/)",
        )
        parser.add_argument(
            "--duration",
            type=options.seconds,
            metavar="SECONDS",
            help="stretch or cut the scenario to this length (soaks)",
        )
        options.add_confirm(parser, "send real traffic to a shared (non-mock) target")
        _add_distributed(parser)
        _add_web_ui(parser)
        parser.add_argument(
            "--pushgateway",
            metavar="URL",
            help="push the run's figures there at its end (default: $AUTHLOAD_PUSHGATEWAY)",
        )
        options.add_verdict_outputs(parser)

    def handle(self, args: argparse.Namespace) -> int:
        from authload.run.launchers import MasterOptions
        from authload.run.runner import run

        options.check_out(Path(args.out))
        destinations = options.destinations(args)
        master = None
        if args.expect_workers is not None:
            master = MasterOptions(
                args.expect_workers, args.master_bind_host, args.master_port, args.workers_timeout
            )
        ui = None
        if args.ui:
            from authload.run.ui import UiOptions, UiSession

            ui = UiSession(UiOptions(args.ui_host, args.ui_port, args.ui_linger))
        try:
            result = run(
                args.scenario,
                target_name=args.target,
                out=args.out,
                processes=args.processes,
                duration_s=args.duration,
                confirm=args.confirm,
                targets_file=args.targets,
                pushgateway=args.pushgateway,
                master=master,
                ui=ui,
            )
            print(f"run directory: {result.run_dir}")
            render.print_summary(result.summary)
            for note in ui.notes() if ui is not None else []:
                print(f"note: {note}")
            print(f"verdict: {result.verdict.upper()}", flush=True)
            from authload.verdict_formats.commands import for_run

            for_run(destinations, result.run_dir, result.summary)
            if ui is not None:
                ui.linger()
        finally:
            if ui is not None:
                ui.close()
        return result.exit_code


def _add_distributed(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "distributed (Locust master here, `authload worker` elsewhere)"
    )
    group.add_argument(
        "--expect-workers", type=int, metavar="N", help="run Locust's master for N remote workers"
    )
    group.add_argument(
        "--master-bind-host", default="0.0.0.0", help="where the master listens (0.0.0.0)"
    )
    group.add_argument(
        "--master-port",
        type=int,
        default=DEFAULT_MASTER_PORT,
        help=f"the master's port ({DEFAULT_MASTER_PORT})",
    )
    group.add_argument(
        "--workers-timeout",
        type=int,
        default=DEFAULT_WORKERS_TIMEOUT_S,
        metavar="SECONDS",
        help="give up when the workers have not all connected by then"
        f" (default {DEFAULT_WORKERS_TIMEOUT_S})",
    )


def _add_web_ui(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Locust's web UI in front of the run (instead of headless)")
    group.add_argument("--ui", action="store_true", help="start the test from Locust's web UI")
    group.add_argument("--ui-host", default="127.0.0.1", help="where the UI listens (127.0.0.1)")
    group.add_argument(
        "--ui-port",
        type=options.port,
        default=DEFAULT_UI_PORT,
        help=f"the UI's port ({DEFAULT_UI_PORT})",
    )
    group.add_argument(
        "--ui-linger",
        type=options.seconds_or_none,
        default=DEFAULT_LINGER_S,
        metavar="SECONDS",
        help=f"serve the report there this long after the run (default {DEFAULT_LINGER_S:g};"
        " Ctrl-C ends it)",
    )
