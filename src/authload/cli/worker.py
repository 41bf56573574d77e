from __future__ import annotations

import argparse

from authload.cli.command import Command
from authload.run.defaults import DEFAULT_MASTER_PORT, DEFAULT_MASTER_TIMEOUT_S


class WorkerCommand(Command):
    name = "worker"
    help = "a Locust worker for `authload run --expect-workers` on another host"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--master-host", required=True, help="where `authload run` runs")
        parser.add_argument(
            "--master-port",
            type=int,
            default=DEFAULT_MASTER_PORT,
            help=f"the master's port ({DEFAULT_MASTER_PORT})",
        )
        parser.add_argument(
            "--master-timeout",
            type=int,
            default=DEFAULT_MASTER_TIMEOUT_S,
            metavar="SECONDS",
            help=f"give up when no master answers by then (default {DEFAULT_MASTER_TIMEOUT_S})",
        )

    def handle(self, args: argparse.Namespace) -> int:
        from authload.run.worker import worker

        return worker(args.master_host, args.master_port, args.master_timeout)
