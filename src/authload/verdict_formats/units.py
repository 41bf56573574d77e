"""Figures as a person reads them in a verdict: a value with its SLO's unit, a threshold."""

from __future__ import annotations

from authload.scenario.slo_grammar import SloSpec, parse_slo

NO_DATA = "no data"


def spec_of(slo: str) -> SloSpec | None:
    """The parsed SLO, or None for text the grammar does not know (an older summary)."""
    try:
        return parse_slo(slo)
    except ValueError:
        return None


def unit_of(spec: SloSpec | None) -> str:
    """The unit an SLO's value and threshold are in (summary.json's, after parsing)."""
    if spec is None:
        return ""
    if spec.stat == "error_rate":
        return "%"
    if spec.stat == "rate":
        return "/s"
    return " ms"


def figure(value: float | None, unit: str) -> str:
    """``912.4 ms``, ``3.2%``, ``41.5/s``; ``no data`` for None."""
    return NO_DATA if value is None else f"{value:.4g}{unit}"


def bound(spec: SloSpec | None, threshold: float | None) -> str:
    """``< 800 ms``: the SLO's operator and threshold in its unit."""
    if threshold is None:
        return "-"
    op = spec.op if spec is not None else ""
    return f"{op} {threshold:g}{unit_of(spec)}".strip()


def where(endpoint: str | None) -> str:
    return "all endpoints" if endpoint in (None, "*") else str(endpoint)


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def share(value: float | None) -> str:
    """A 0..1 share as a percentage."""
    return "-" if value is None else f"{value:.2%}"
