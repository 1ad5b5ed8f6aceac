"""``reports/claims.html``: the report as one self-contained page (figures inline, no network), the same content as
``claims.md``: the claim x tier grid, the findings, per family the judged records in a table a browser can sort
(click a column) and the skipped ones one line per reason, then the figures.

On load the page counts its figures that decoded (``data-figures-loaded`` / ``data-figures`` on ``<body>``), so a
headless browser can check that every one rendered (``tests/test_report_html.py``)."""
from __future__ import annotations

import base64
import html
from pathlib import Path

from ..verify import catalog
from ..verify.records import SKIPPED, Record
from . import summary

_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5em auto; max-width: 1400px; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: .6em 0 1.2em; }
th, td { border: 1px solid #ccc; padding: .25em .5em; vertical-align: top; }
th { background: #f3f3f3; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th:after { content: " \\2195"; color: #999; font-size: 80%; }
td.cell { text-align: center; white-space: nowrap; font-weight: bold; }
td.v-reproduced { background: #d9f2d9; color: #1a6b1a; } td.v-not-reproduced { background: #f8d7d7; color: #9b1c1c; }
td.v-inconclusive { background: #fcefc7; color: #7a5a00; } td.v-consistent-with-source { background: #dbe9f8; color: #1d4f8a; }
td.v-skipped { color: #888; } td.v-mixed { background: #eee6f7; }
td.reason { max-width: 42em; font-size: 90%; }
figure { display: inline-block; margin: .5em 1em 1em 0; vertical-align: top; }
figure img { max-width: 640px; border: 1px solid #ddd; }
.legend { color: #555; font-size: 90%; }
"""

# click a header: sort that table's rows by the column (numbers as numbers, then text), again to reverse
_SCRIPT = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  table.querySelectorAll('th').forEach(function (th, col) {
    th.addEventListener('click', function () {
      var body = table.tBodies[0], rows = Array.from(body.rows), up = th.dataset.up !== '1';
      rows.sort(function (a, b) {
        var x = a.cells[col].dataset.key || a.cells[col].textContent, y = b.cells[col].dataset.key || b.cells[col].textContent;
        var nx = parseFloat(x), ny = parseFloat(y);
        var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
        return up ? c : -c;
      });
      th.dataset.up = up ? '1' : '0';
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
function countFigures() {
  var imgs = Array.from(document.querySelectorAll('figure img'));
  document.body.dataset.figures = imgs.length;
  document.body.dataset.figuresLoaded = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
}
window.addEventListener('load', countFigures);
countFigures();
"""


# symbols every system font has (the markdown's emoji need an emoji font a headless machine may lack)
SYMBOLS = {"reproduced": "✓", "not reproduced": "✗", "inconclusive": "?", "consistent with source": "☑",
           "skipped": "○", "smoke run": "⚙"}


def _cell(count, registered: bool) -> str:
    kind = summary.cell_summary(count) if registered and count else ""
    cls = f" v-{kind.replace(' ', '-')}" if kind else ""
    return f"<td class='cell{cls}'>{_e(summary.cell_text(count, registered, SYMBOLS))}</td>"


def _e(x) -> str:
    return html.escape(str(x), quote=True)


def _figure(out_dir: Path, caption: str, path: str) -> str:
    """A figure inlined as a data URI (a file that cannot be read becomes a line saying so)."""
    try:
        data = base64.b64encode((out_dir / path).read_bytes()).decode("ascii")
    except OSError as e:
        return f"<p>figure {_e(caption)}: {_e(path)} could not be read ({_e(e.strerror or e)})</p>"
    mime = "image/svg+xml" if path.endswith(".svg") else "image/png"
    return (f'<figure><img alt="{_e(caption)}" src="data:{mime};base64,{data}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def page(records: list[Record], out_dir: Path, figures: list[tuple[str, str]] = (), wall_s: float | None = None,
         notes: list[str] = (), runs: dict[str, dict] | None = None) -> str:
    """The report as one HTML page (figures read from ``out_dir`` and inlined)."""
    grid = summary.cells(records)
    held = summary.held_runs(records, runs or {})
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>mcdo claims report</title>",
             f"<style>{_STYLE}</style></head><body>", "<h1>mcdo claims report</h1>"]
    parts += [f"<p>{_e(line.lstrip('- '))}</p>" for line in summary.header(records, wall_s, held) if line]
    cov = summary.coverage(records)
    parts.append("<p><b>Coverage</b> (claims with a verdict / claims on the tier): "
                 + ", ".join(f"{t} {a}/{b}" for t, (a, b) in cov.items()) + f"; <b>records</b>: {len(records)}</p>")
    parts.append("<h2>Claims at a glance</h2><table class='sortable'><thead><tr><th>id</th><th>claim</th>"
                 + "".join(f"<th>{t}</th>" for t in catalog.TIERS) + "</tr></thead><tbody>")
    for c in catalog.CLAIMS:
        parts.append(f"<tr><td>{_e(c.id)}</td><td title='{_e(c.statement)}'>{_e(summary.short(c.statement))}</td>"
                     + "".join(_cell(grid.get((c.id, t)), t in c.tiers) for t in catalog.TIERS) + "</tr>")
    parts.append("</tbody></table><p class='legend'>✓ reproduced, ✗ not reproduced, ? inconclusive, ☑ consistent "
                 "with source, ○ skipped, · not evaluated in this run; a count beside a symbol when a cell's records "
                 "differ (violet). Hover a claim for its whole statement; click a column to sort.</p>")
    found = summary.finding_rows(records)
    if found:
        parts.append("<h2>Findings</h2><ul>" + "".join(f"<li><b>{_e(c)} / {_e(t)}</b>: {_e(x)}</li>"
                                                      for c, t, x in found) + "</ul>")
    by_id: dict[str, list[Record]] = {}
    for r in records:
        by_id.setdefault(r.id, []).append(r)
    head = ("id", "tier", "model", "verdict", "measured", "95% CI", "expected", "departures", "reason")
    for fam, seed in catalog.SEEDS.items():
        fam_records = [r for c in catalog.CLAIMS if c.family == fam for r in by_id.get(c.id, [])]
        parts.append(f"<h2>{_e(fam)}: {_e(catalog.SEED_TITLES[fam])} <small>(seeds/{_e(seed)})</small></h2>")
        judged = [r for r in fam_records if r.verdict != SKIPPED]
        if judged:
            parts.append("<table class='sortable'><thead><tr>" + "".join(f"<th>{h}</th>" for h in head)
                         + "</tr></thead><tbody>")
            for r in judged:
                ci = f"[{summary.fmt(r.ci[0])}, {summary.fmt(r.ci[1])}]" if r.ci else ""
                model = f"{r.model} ({r.variant})" if r.variant else r.model
                key = "" if r.measured is None else f" data-key='{r.measured!r}'"
                parts.append(f"<tr><td>{_e(r.id)}</td><td>{_e(r.tier)}</td><td>{_e(model)}</td>"
                             f"<td>{_e(summary.MARK[r.verdict])}</td><td{key}>{_e(summary.fmt(r.measured))}</td>"
                             f"<td>{_e(ci)}</td><td>{_e(r.expected)}</td><td>{_e(summary.departures_text(r))}</td>"
                             f"<td class='reason'>{_e(r.reason)}</td></tr>")
            parts.append("</tbody></table>")
        groups = summary.skip_groups(fam_records)
        if groups:
            parts.append(f"<p>Skipped ({sum(len(v) for _, v in groups)} records), one line per reason:</p><ul>"
                         + "".join(f"<li>{_e(reason)} <small>({_e(', '.join(which))})</small></li>"
                                   for reason, which in groups) + "</ul>")
    if figures or notes:
        parts.append("<h2>Figures</h2>")
        parts += [_figure(Path(out_dir), caption, path) for caption, path in figures]
        parts += [f"<p>{_e(n)}</p>" for n in notes]
    parts.append(f"<script>{_SCRIPT}</script></body></html>")
    return "\n".join(parts) + "\n"
