"""Where the verdict's formats go: ``--junit FILE``, ``--summary-md FILE``, and the job
summary of GitHub Actions (the file named by ``$GITHUB_STEP_SUMMARY``, appended to)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from authload.errors import InputError
from authload.verdict_formats.cases import Suite
from authload.verdict_formats.junit import junit_xml

GITHUB_STEP_SUMMARY = "GITHUB_STEP_SUMMARY"


@dataclass(frozen=True)
class Destinations:
    """The files asked for on the command line (None: not asked)."""

    junit: str | None = None
    summary_md: str | None = None

    @property
    def wanted(self) -> bool:
        return self.junit is not None or self.summary_md is not None

    def check(self) -> None:
        """Refuse, before any work, a file that could not be written at the end."""
        for option, name in (("--junit", self.junit), ("--summary-md", self.summary_md)):
            if name is None:
                continue
            path = Path(name)
            if path.is_dir():
                raise InputError(f"{option} {name}: is a directory")
            if not path.parent.is_dir():
                raise InputError(f"{option} {name}: no directory {path.parent}")


def write(
    destinations: Destinations,
    suites: Sequence[Suite],
    markdown: Callable[[], str],
    environ: Mapping[str, str] = os.environ,
) -> list[str]:
    """Write what was asked; return the files written (the job summary among them)."""
    written = []
    if destinations.junit is not None:
        Path(destinations.junit).write_text(junit_xml(suites), encoding="utf-8")
        written.append(destinations.junit)
    if destinations.summary_md is not None:
        text = markdown()
        Path(destinations.summary_md).write_text(text, encoding="utf-8")
        written.append(destinations.summary_md)
        step_summary = environ.get(GITHUB_STEP_SUMMARY)
        if step_summary:
            with Path(step_summary).open("a", encoding="utf-8") as out:
                out.write(text)
            written.append(step_summary)
    return written
