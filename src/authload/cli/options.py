"""What several commands share: argument types, options and the checks made before any work."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from authload.verdict_formats.outputs import Destinations


def port(text: str) -> int:
    """A TCP port, 1..65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 1..65535, not {value}")
    return value


def at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def seconds(text: str) -> float:
    """Finite seconds above 0 (float() alone takes nan and inf)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(
            f"must be a finite number of seconds above 0, not {text!r}"
        )
    return value


def seconds_or_none(text: str) -> float:
    """Finite seconds, 0 or more."""
    return 0.0 if text.strip() in ("0", "0.0") else seconds(text)


def add_comparison_options(parser: argparse.ArgumentParser) -> None:
    """What a comparison ignores and how sure it must be (compare, runs --compare-latest)."""
    parser.add_argument(
        "--tolerance", type=float, default=0.05, help="latency change ignored (default 0.05: 5%%)"
    )
    parser.add_argument(
        "--error-tolerance",
        type=float,
        default=0.5,
        metavar="PP",
        help="error-rate change ignored, in percentage points (default 0.5)",
    )
    parser.add_argument(
        "--confidence", type=float, default=0.95, help="level of the intervals (default 0.95)"
    )
    parser.add_argument(
        "--floor",
        type=float,
        default=2.0,
        metavar="MS",
        help="latency change ignored in ms, whatever its share (default 2; at least the "
        "records' resolution)",
    )


def check_comparison_options(args: argparse.Namespace) -> None:
    from authload.errors import InputError

    if not args.tolerance >= 0 or not args.error_tolerance >= 0 or not args.floor >= 0:
        raise InputError("--tolerance, --error-tolerance and --floor must be >= 0")
    if not 0 < args.confidence < 1:
        raise InputError(f"--confidence must be between 0 and 1, not {args.confidence}")


def add_verdict_outputs(parser: argparse.ArgumentParser) -> None:
    """The verdict for pipelines (run, report, compare, capacity)."""
    group = parser.add_argument_group("the verdict for CI pipelines")
    group.add_argument(
        "--junit",
        metavar="FILE",
        help="write the verdict as JUnit XML (a test case per SLO, default gate, row)",
    )
    group.add_argument(
        "--summary-md",
        metavar="FILE",
        help="write a Markdown summary; also appended to $GITHUB_STEP_SUMMARY when set",
    )


def destinations(args: argparse.Namespace) -> Destinations:
    """The files --junit and --summary-md name, checked before any work."""
    from authload.verdict_formats.outputs import Destinations

    chosen = Destinations(junit=args.junit, summary_md=args.summary_md)
    chosen.check()
    return chosen


def add_target_options(parser: argparse.ArgumentParser, *, target_help: str, out_help: str) -> None:
    """Where run and capacity send traffic and write, and with how many processes."""
    parser.add_argument("--target", help=target_help)
    parser.add_argument("--targets", metavar="FILE", help="YAML file of named targets")
    parser.add_argument("--out", default="runs", help=out_help)
    parser.add_argument("--processes", type=int, default=1, help="Locust worker processes")


def add_confirm(parser: argparse.ArgumentParser, help_text: str) -> None:
    """The consent run and capacity need before they load a shared target."""
    parser.add_argument("--confirm", action="store_true", help=help_text)


def check_out(out: Path) -> None:
    """``--out`` must be a directory or become one: no file on the way."""
    from authload.errors import InputError

    for place in (out, *out.parents):
        if place.is_dir():
            return
        if place.exists() or place.is_symlink():
            raise InputError(f"--out {out}: {place} is not a directory")
