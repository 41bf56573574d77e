"""What every `authload` command is, and the exit codes they return."""

from __future__ import annotations

import argparse
from abc import ABC, abstractmethod
from typing import ClassVar

EXIT_PASS, EXIT_FAIL, EXIT_INPUT, EXIT_ERROR = 0, 1, 2, 3


class Command(ABC):
    """A sub-command: its name and help line, its arguments, its handler (the exit code).

    Handlers raise AuthloadError for what went wrong; `main` prints it and maps it to its
    exit code."""

    name: ClassVar[str]
    help: ClassVar[str]

    @abstractmethod
    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    @abstractmethod
    def handle(self, args: argparse.Namespace) -> int: ...
