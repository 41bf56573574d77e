from __future__ import annotations

import argparse
import sys

from authload.cli import options
from authload.cli.command import EXIT_PASS, Command


class MockCommand(Command):
    name = "mock"
    help = "serve both APIs, /_mock/*, /healthz, /openapi.json"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument(
            "--port", type=options.port, default=8080, help="1..65535 (default 8080)"
        )
        parser.add_argument("--fd", type=int, help=argparse.SUPPRESS)
        parser.add_argument("--app-token", help="Gigma `Token` accepted (default mock-app-token)")
        parser.add_argument(
            "--client-secret", help="mobile client_secret (default mock-client-secret)"
        )
        parser.add_argument(
            "--population", type=int, help="number of test accounts (default 10000)"
        )
        parser.add_argument("--seed", type=int, help="seed of the test population (default 1)")
        parser.add_argument(
            "--behaviour", metavar="FILE", help="behaviour profile YAML (default: the shipped one)"
        )
        parser.add_argument("--store", help="state store: memory (default) or redis://HOST:PORT/DB")
        parser.add_argument(
            "--workers",
            type=options.at_least_one,
            default=1,
            help="processes serving the port (more than 1 needs a redis store)",
        )
        parser.add_argument(
            "--log-level",
            default="warning",
            choices=["critical", "error", "warning", "info", "debug"],
        )

    def handle(self, args: argparse.Namespace) -> int:
        from authload.mock.server import listen, serve
        from authload.mock.settings import load_settings

        settings = load_settings(
            app_token=args.app_token,
            client_secret=args.client_secret,
            population=args.population,
            seed=args.seed,
            behaviour=args.behaviour,
            store=args.store,
        )
        sock = None
        if args.fd is None:  # bind before the banner: a taken port is one clear line, exit 2
            sock = listen(args.host, args.port)
            if args.workers > 1:  # uvicorn binds it for its worker processes
                sock.close()
                sock = None
            print(
                f"authload mock: Gigma and mobile v2 APIs on http://{args.host}:{args.port} "
                f"(population {settings.population}, seed {settings.seed}); Ctrl-C stops",
                file=sys.stderr,
                flush=True,
            )
        serve(
            settings,
            host=args.host,
            port=args.port,
            fd=args.fd,
            workers=args.workers,
            log_level=args.log_level,
            sock=sock,
        )
        return EXIT_PASS
