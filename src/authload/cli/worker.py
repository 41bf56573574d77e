from __future__ import annotations

import argparse

from authload.cli.command import Command


class WorkerCommand(Command):
    name = "worker"
    help = "a Locust worker for `authload run --expect-workers` on another host"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--master-host", required=True, help="where `authload run` runs")
        parser.add_argument(
            "--master-port", type=int, default=5557, help="the master's port (5557)"
        )
        parser.add_argument(
            "--master-timeout",
            type=int,
            default=300,
            metavar="SECONDS",
            help="give up when no master answers by then (default 300)",
        )

    def handle(self, args: argparse.Namespace) -> int:
        from authload.run import worker

        return worker(args.master_host, args.master_port, args.master_timeout)
