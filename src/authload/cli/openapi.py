from __future__ import annotations

import argparse
import json

from authload.cli.command import EXIT_PASS, Command


class OpenapiCommand(Command):
    name = "openapi"
    help = "print the mock's OpenAPI document"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        pass

    def handle(self, args: argparse.Namespace) -> int:
        from authload.contracts.openapi import openapi_document

        print(json.dumps(openapi_document(), ensure_ascii=False, indent=2))
        return EXIT_PASS
