"""HTML building blocks of the self-contained report pages (run, drift, capacity): every
value escaped, numbers formatted one way, plots inlined as PNG."""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable, Mapping, Sequence
from numbers import Integral, Real
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from authload.analysis.figures import figure_png

__all__ = ["escape", "frame_table", "img", "num", "pairs", "table"]


def escape(value: object) -> str:
    return html.escape(str(value))


def num(value: Any, digits: int = 1, suffix: str = "") -> str:
    """A number for a table: integers as they are, others with ``digits`` decimals; None
    and NaN as ``-``; anything else as text."""
    if value is None or (isinstance(value, Real) and math.isnan(value)):
        return "-"
    if isinstance(value, bool) or not isinstance(value, Real):
        return str(value)
    if isinstance(value, Integral):
        return f"{int(value)}{suffix}"
    return f"{float(value):.{digits}f}{suffix}"


def table(head: Sequence[str], rows: Iterable[Sequence[Any]], cls: str = "") -> str:
    """An HTML table; every cell is escaped. A cell given as ``(text, css_class)`` gets the
    class (classes come from this module, never from data)."""
    parts = [f'<table class="{cls}"><thead><tr>' if cls else "<table><thead><tr>"]
    parts += [f"<th>{escape(h)}</th>" for h in head]
    parts.append("</tr></thead><tbody>")
    for row in rows:
        cells = []
        for cell in row:
            text, css = cell if isinstance(cell, tuple) else (cell, "")
            cells.append(
                f'<td class="{css}">{escape(text)}</td>' if css else f"<td>{escape(text)}</td>"
            )
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts.append("</tbody></table>")
    return "".join(parts)


def frame_table(df: pd.DataFrame, digits: int = 2) -> str:
    if df.empty:
        return "<p class=note>none</p>"
    rows = [
        [", ".join(map(str, v)) if isinstance(v, list | tuple) else num(v, digits) for v in row]
        for row in df.itertuples(index=False)
    ]
    return table([str(c) for c in df.columns], rows)


def pairs(data: Mapping[str, Any], digits: int = 3) -> str:
    return table(["", "value"], [[k, num(v, digits)] for k, v in _flat(data).items()], "kv")


def _flat(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def img(title: str, fig: Figure) -> str:
    data = base64.b64encode(figure_png(fig)).decode("ascii")
    return (
        f'<figure><h3>{escape(title)}</h3><img alt="{escape(title)}" '
        f'src="data:image/png;base64,{data}"></figure>'
    )
