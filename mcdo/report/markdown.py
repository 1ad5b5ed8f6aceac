"""claims.md: the claim x tier grid, the findings, then per family the records (``summary`` holds the pieces)."""
from __future__ import annotations

from collections import Counter

from ..oodbench import ood_table_markdown
from ..verify import catalog
from ..verify.records import SKIPPED, Record
from .summary import (MARK, SYMBOL, cell_summary, cell_text, cells, config_cell, coverage, departures_text,
                      finding_rows, fmt, header, held_runs, short, skip_groups)

def markdown(records: list[Record], figures: list[tuple[str, str]] = (), wall_s: float | None = None,
             notes: list[str] = (), runs: dict[str, dict] | None = None) -> str:
    """The claim x tier grid (one symbol per cell), the findings, then per family the judged records and the
    skipped ones collapsed into one line per reason; figures last."""
    cov = coverage(records)
    grid = cells(records)
    lines = ["# mcdo claims report", ""]
    lines += header(records, wall_s, held_runs(records, runs or {}))
    lines.append("")
    summary = Counter(cell_summary(grid.get((c.id, t))) for c in catalog.CLAIMS for t in c.tiers)
    lines.append(f"**Claims**: {len(catalog.CLAIMS)}, on {sum(summary.values())} claim x tier cells: "
                 + ", ".join(f"{v} {summary[v]}" for v in (*SYMBOL, "mixed", "not evaluated") if summary.get(v)) + ".")
    lines.append("**Coverage** (claims with a verdict / claims on the tier): "
                 + ", ".join(f"{t} {a}/{b}" for t, (a, b) in cov.items()) + f". **Records**: {len(records)}.")
    lines += ["", "| id | claim | " + " | ".join(catalog.TIERS) + " |",
              "| --- | --- | " + " | ".join("---" for _ in catalog.TIERS) + " |"]
    for c in catalog.CLAIMS:
        lines.append(f"| {c.id} | {short(c.statement).replace('|', '/')} | "
                     + " | ".join(cell_text(grid.get((c.id, t)), t in c.tiers) for t in catalog.TIERS) + " |")
    present = {v for count in grid.values() for v in count}  # the legend names every symbol of the grid
    legend = ", ".join(f"{sym} {verdict}" for verdict, sym in SYMBOL.items() if verdict != "smoke run"
                       or verdict in present)
    lines += ["", f"{legend}, · not evaluated in this run; a count beside a symbol when a cell's records differ "
              "(one per model or setting)."]
    found = finding_rows(records)
    if found:
        lines += ["", "## Findings", ""] + [f"- **{c} / {t}**: {text}" for c, t, text in found]
    lines += ["", "Measured values carry a 95% CI (method in each reason). Verdicts: reproduced = the whole CI lies "
                 "within the claim's equivalence margin (given, with why, in each reason) or wholly on the claimed "
                 "side; not reproduced = wholly outside it or on the other side; inconclusive = the CI straddles an "
                 "edge (the reason says how many images would decide); consistent with source = the source's own "
                 "summary figure checked (no data to recompute it from); skipped = what is missing, and how to "
                 "supply it. A zero-width "
                 "interval marks an exact figure with no sampling in it (a count, a dimension, an identity, or a "
                 "gate outcome whose figures' CIs, given in the reason, all lie on one side of their thresholds)."]
    by_id: dict[str, list[Record]] = {}
    for r in records:
        by_id.setdefault(r.id, []).append(r)
    for fam, seed in catalog.SEEDS.items():
        fam_records = [r for c in catalog.CLAIMS if c.family == fam for r in by_id.get(c.id, [])]
        lines += ["", f"## {fam}: {catalog.SEED_TITLES[fam]} (`seeds/{seed}`)", "",
                  "| id | tier | model | T | K | N | verdict | measured | 95% CI | expected | departures | reason |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in fam_records:
            if r.verdict == SKIPPED:
                continue
            ci = f"[{fmt(r.ci[0])}, {fmt(r.ci[1])}]" if r.ci else ""
            reason = r.reason.replace("|", "/").replace("\n", " ")
            T, K, N = (config_cell(r.config.get(k)) for k in ("T", "trials", "n_images"))
            model = f"{r.model} ({r.variant})" if r.variant else r.model
            lines.append(f"| {r.id} | {r.tier} | {model} | {T} | {K} | {N} | {MARK[r.verdict]} | "
                         f"{fmt(r.measured)} | {ci} | {r.expected.replace('|', '/')} | {departures_text(r)} | "
                         f"{reason} |")
        groups = skip_groups(fam_records)
        if groups:
            lines += ["", f"Skipped ({sum(len(v) for _, v in groups)} records), one line per reason:", ""]
            lines += [f"- {reason} ({', '.join(which)})" for reason, which in groups]
    tables = [r for r in records if r.id == "OOD-08" and r.verdict != SKIPPED and "table" in r.details]
    if tables:
        lines += ["", "## OOD tables (OOD-08)", ""]
        for r in tables:
            lines += [f"**{r.model}** ({r.tier} tier)", "", ood_table_markdown(r.details["table"]), ""]
    if figures or notes:
        lines += ["", "## Figures", ""]
        for caption, path in figures:
            lines += [f"**{caption}**", "", f"![{caption}]({path})", ""]
        lines += [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


