"""The verdict table of `bo.diagnose` as text (`str(d)`) and as self-contained HTML
(`d.to_html()`): every line worst first, fail and warn before n/a and ok."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bayesover.diagnostics._thresholds import RHAT_OK, RHAT_WARN, STAT_COLUMNS, beside

if TYPE_CHECKING:
    from bayesover.diagnostics._verdict import Diagnostics

_SHOW_ORDER = {"fail": 0, "warn": 1, "n/a": 2, "ok": 3}
_TEXT_OK_ROWS = 15
_HTML_BAD_ROWS = 10  # to_html(fold=True): fail/warn variables shown before folding the rest
_ROW_COLOURS = {"ok": "#e8f5e9", "warn": "#fff8e1", "fail": "#ffebee", "n/a": "#f5f5f5"}


def to_text(diagnostics: Diagnostics) -> str:
    """`str(Diagnostics)`: the fixed-width text table (what it shows: see there)."""
    lines = [headline(diagnostics)]
    if len(diagnostics.checks):
        body = [
            [str(name), *(str(row[c]) for c in ("verdict", "value", "threshold", "reason"))]
            for name, row in _worst_first(diagnostics.checks).iterrows()
        ]
        lines += ["", *_text_table(["check", "verdict", "value", "threshold", "reason"], body)]
    if len(diagnostics.variables):
        verdict = diagnostics.variables["verdict"]
        shown, hidden = [], []
        for level in ("fail", "warn", "n/a", "ok"):
            rows = diagnostics.variables[verdict == level]
            if level in ("n/a", "ok") and len(rows) > _TEXT_OK_ROWS:
                hidden.append(f"... {len(rows) - _TEXT_OK_ROWS} more variables {level}")
                rows = rows.iloc[:_TEXT_OK_ROWS]
            for name, row in zip(rows.index, rows.itertuples(index=False), strict=True):
                stats = [format_stat(c, getattr(row, c)) for c in STAT_COLUMNS]
                shown.append([str(name), level, *stats, str(row.reason)])
        header = ["variable", "verdict", *STAT_COLUMNS, "reason"]
        lines += ["", *_text_table(header, shown, right=range(2, 2 + len(STAT_COLUMNS)))]
        lines += hidden
    return "\n".join(line.rstrip() for line in lines)


def to_html(diagnostics: Diagnostics, *, fold: bool) -> str:
    """`Diagnostics.to_html`: the HTML table, folded or not (what each shows: see there)."""
    table = '<table class="diagnostics" style="border-collapse:collapse;font-size:0.9em">'
    rows = [table, f"<caption>{html.escape(headline(diagnostics))}</caption>"]
    if not fold:
        rows += _html_body(diagnostics.checks, diagnostics.variables)
        if not len(diagnostics.checks) and not len(diagnostics.variables):
            rows.append(_html_note("nothing to diagnose"))
        rows.append("</table>")
        return "\n".join(rows)
    bad, rest = ["fail", "warn"], ["ok", "n/a"]
    check_level = diagnostics.checks["verdict"]
    bad_variables = _worst_first(diagnostics.variables[diagnostics.variables["verdict"].isin(bad)])
    shown, more = bad_variables.iloc[:_HTML_BAD_ROWS], bad_variables.iloc[_HTML_BAD_ROWS:]
    for level in bad:
        rows += _html_body(
            diagnostics.checks[check_level == level], shown[shown["verdict"] == level]
        )
    if len(rows) == 2:  # caption only: nothing fails or warns
        empty = not len(diagnostics.checks) and not len(diagnostics.variables)
        rows.append(_html_note("nothing to diagnose" if empty else "no line warns or fails"))
    rows.append("</table>")
    if len(more):
        found = more["verdict"].value_counts()
        which = ", ".join(f"{int(found[v])} {v}" for v in bad if v in found)
        summary = f"{len(more)} more variables that fail or warn ({which})"
        rows += _html_folded(summary, table, _html_body(diagnostics.checks.iloc[:0], more))
    folded_checks = diagnostics.checks[check_level.isin(rest)]
    folded_variables = diagnostics.variables[diagnostics.variables["verdict"].isin(rest)]
    if len(folded_checks) or len(folded_variables):
        counts = diagnostics.counts
        summary = ", ".join(f"{counts[v]} {v}" for v in rest if counts[v])
        rows += _html_folded(summary, table, _html_body(folded_checks, folded_variables))
    return "\n".join(rows)


def headline(diagnostics: Diagnostics) -> str:
    """`Diagnostics (NAME, TASK): VERDICT [counts]`, the first line of both tables."""
    run = ", ".join(str(x) for x in (diagnostics.name, diagnostics.task) if x)
    counts = ", ".join(f"{n} {v}" for v, n in diagnostics.counts.items())
    return f"Diagnostics{f' ({run})' if run else ''}: {diagnostics.verdict.upper()} [{counts}]"


def format_stat(column: str, x: float) -> str:
    """One statistic as the tables print it: R-hat to 3 decimals (more beside a threshold),
    ESS as an integer, the rest to 4 significant digits, "-" when not finite."""
    if not np.isfinite(x):
        return "-"
    if column == "r_hat":
        return beside(x, RHAT_WARN, 3) if x >= RHAT_WARN else beside(x, RHAT_OK, 3)
    if column.startswith("ess"):
        return f"{x:.0f}"
    return f"{x:.4g}"


def _worst_first(frame: pd.DataFrame) -> pd.DataFrame:
    order = frame["verdict"].map(_SHOW_ORDER).to_numpy()
    return frame.iloc[np.argsort(order, kind="stable")]


def _text_table(
    header: list[str], body: list[list[str]], right: range | tuple[int, ...] = ()
) -> list[str]:
    """Fixed-width columns; the last column (the reason) is not padded."""
    widths = [max(len(str(r[j])) for r in [header, *body]) for j in range(len(header) - 1)]

    def fmt(row: list[str]) -> str:
        cells = [
            str(c).rjust(w) if j in right else str(c).ljust(w)
            for j, (c, w) in enumerate(zip(row[:-1], widths, strict=True))
        ]
        return "  ".join([*cells, str(row[-1])])

    return [fmt(header), *(fmt(r) for r in body)]


def _html_body(checks: pd.DataFrame, variables: pd.DataFrame) -> list[str]:
    """The `<tbody>` of the checks and that of the variables, each worst first (none when
    empty)."""
    rows = []
    if len(checks):
        rows.append('<tbody class="checks">')
        rows.append(_html_header(["check", "verdict"], ["value (threshold)"], len(STAT_COLUMNS)))
        for name, row in _worst_first(checks).iterrows():
            value = f"{row['value']} (threshold: {row['threshold']})"
            rows.append(
                _html_row(row["verdict"], name, [(value, len(STAT_COLUMNS))], row["reason"])
            )
        rows.append("</tbody>")
    if len(variables):
        rows.append('<tbody class="variables">')
        rows.append(_html_header(["variable", "verdict"], list(STAT_COLUMNS), 1))
        for name, row in _worst_first(variables).iterrows():
            cells = [(format_stat(col, row[col]), 1) for col in STAT_COLUMNS]
            rows.append(_html_row(row["verdict"], name, cells, row["reason"]))
        rows.append("</tbody>")
    return rows


def _html_folded(summary: str, table: str, body: list[str]) -> list[str]:
    """`body` in a table of its own, folded in a `<details>` under `summary`."""
    return [
        '<details class="diagnostics-folded">',
        f"<summary>{html.escape(summary)}</summary>",
        table.replace('class="diagnostics"', 'class="diagnostics folded"', 1),
        *body,
        "</table>",
        "</details>",
    ]


def _html_note(text: str) -> str:
    ncol = 2 + len(STAT_COLUMNS) + 1
    return f'<tbody><tr><td colspan="{ncol}">{html.escape(text)}</td></tr></tbody>'


def _html_header(first: list[str], middle: list[str], span: int) -> str:
    esc = html.escape
    cells = [f'<th scope="col">{esc(c)}</th>' for c in first]
    colspan = f' colspan="{span}"' if span > 1 else ""
    cells += [f'<th scope="col"{colspan}>{esc(c)}</th>' for c in middle]
    cells.append('<th scope="col">reason</th>')
    return "<tr>" + "".join(cells) + "</tr>"


def _html_row(verdict: str, name: Any, cells: list[tuple[str, int]], reason: str) -> str:
    esc = html.escape
    style = f"background:{_ROW_COLOURS.get(verdict, '#ffffff')}"
    parts = [
        f'<tr class="{esc(verdict)}" style="{style}">',
        f'<th scope="row" style="text-align:left;padding:2px 6px">{esc(str(name))}</th>',
        f'<td style="padding:2px 6px"><b>{esc(verdict)}</b></td>',
    ]
    for text, span in cells:
        align = "left" if span > 1 else "right"
        colspan = f' colspan="{span}"' if span > 1 else ""
        parts.append(f'<td{colspan} style="text-align:{align};padding:2px 6px">{esc(text)}</td>')
    parts.append(f'<td style="text-align:left;padding:2px 6px">{esc(str(reason))}</td>')
    parts.append("</tr>")
    return "".join(parts)
