"""HTML building blocks of the self-contained report pages (run, drift, capacity): every
value escaped, numbers formatted one way, plots inlined as PNG."""

from __future__ import annotations

import base64
import html
import math
import string
from collections.abc import Iterable, Mapping, Sequence
from numbers import Integral, Real
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from authload.analysis.figures import figure_png

__all__ = ["document", "escape", "frame_table", "img", "num", "pairs", "table"]


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


_DOCUMENT = string.Template("""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title</title>
<style>
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1f2328;
max-width:1100px;margin:24px auto;padding:0 16px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;
border-bottom:1px solid #d0d7de;padding-bottom:4px}h3{font-size:15px;margin:16px 0 4px}
.meta{color:#57606a;margin:0 0 12px}
.headline{display:inline-block;font-size:30px;font-weight:700;color:#fff;
padding:6px 20px;border-radius:8px;letter-spacing:1px;background:$colour}
table{border-collapse:collapse;margin:6px 0;font-size:13px}
th,td{border:1px solid #d0d7de;padding:3px 8px;text-align:right;vertical-align:top}
th{background:#f6f8fa}td:first-child,th:first-child{text-align:left}
table.kv td:last-child{text-align:left}
.pass{color:#1a7f37;font-weight:600}.fail{color:#cf222e;font-weight:700}
.badge{display:inline-block;padding:2px 10px;border-radius:6px;font-weight:600}
.badge.pass{background:#dafbe1;color:#1a7f37}.badge.fail{background:#ffebe9;color:#cf222e}
.note{color:#57606a}figure{margin:8px 0}img{max-width:100%}
</style></head><body>
<h1>$title</h1>
<p class="meta">$meta</p>
<div class="headline">$headline</div>
$body
</body></html>
""")


def document(title: str, meta: str, headline: str, colour: str, body: str) -> str:
    """A whole self-contained page: ``title``, ``meta`` and ``headline`` are text (escaped
    here), ``colour`` the headline's CSS colour, ``body`` HTML made with this module."""
    return _DOCUMENT.substitute(
        title=escape(title),
        meta=escape(meta),
        headline=escape(headline),
        colour=colour,
        body=body,
    )
