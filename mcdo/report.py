"""Records -> ``reports/``: claims.json (all records), claims.jsonl, claims.md (one table, by seed)."""
from __future__ import annotations

import json
import math
import time
from collections import Counter
from pathlib import Path

from .io import write_texts_atomic
from .oodbench import ood_table_markdown
from .verify import catalog
from .verify.records import SKIPPED, Record

_MARK = {"reproduced": "✅ reproduced", "not reproduced": "❌ not reproduced", "inconclusive": "❔ inconclusive",
         "consistent with source": "☑ consistent with source", "skipped": "⏭ skipped"}


def _fmt(x) -> str:
    if x is None:
        return ""
    if isinstance(x, str):
        return x
    if not math.isfinite(x):
        return str(x)
    a = abs(x)
    return f"{x:.3g}" if (a >= 1000 or (0 < a < 0.001)) else f"{x:.3f}"


def _cell(x) -> str:
    """A configuration value in a table cell: a list as 16->64, nothing when the record does not state it."""
    if x is None:
        return ""
    return "->".join(map(str, x)) if isinstance(x, (list, tuple)) else str(x)


def departures_text(r: Record) -> str:
    """Where the run's configuration differs from the source's, each with its reason, for a table cell."""
    return "; ".join(f"{k}: {_cell(v.get('run'))} not {_cell(v.get('source'))} ({v.get('reason', '')})"
                     for k, v in (r.departures or {}).items()).replace("|", "/")


def coverage(records: list[Record], tiers: tuple[str, ...] = catalog.TIERS) -> dict[str, tuple[int, int]]:
    """Per tier: (claims with a verdict, claims registered on that tier)."""
    out = {}
    for tier in tiers:
        registered = {c.id for c in catalog.CLAIMS if tier in c.tiers}
        judged = {r.id for r in records if r.tier == tier and r.verdict != SKIPPED}
        out[tier] = (len(judged & registered), len(registered))
    return out


def markdown(records: list[Record], figures: list[tuple[str, str]] = (), wall_s: float | None = None,
             notes: list[str] = ()) -> str:
    """One table grouped by seed, a coverage line per tier, verdict counts, and figures."""
    cov = coverage(records)
    counts = Counter(r.verdict for r in records)
    lines = ["# mcdo claims report", ""]
    commit = records[0].commit if records else "unknown"
    lines.append(f"Commit `{commit}`, {time.strftime('%Y-%m-%d %H:%M')}" + (f", wall time {wall_s:.0f} s" if wall_s else "") + ".")
    lines.append("")
    lines.append("**Coverage** (claims with a verdict / claims on the tier): "
                 + ", ".join(f"{t} {a}/{b}" for t, (a, b) in cov.items()) + ".")
    lines.append("**Records**: " + ", ".join(f"{v} {counts.get(v, 0)}" for v in _MARK) + ".")
    lines.append("")
    lines.append("Measured values carry a 95% CI (method in each reason). Verdicts: reproduced = the whole CI lies "
                 "within the claim's equivalence margin (given, with why, in each reason) or wholly on the claimed "
                 "side; not reproduced = wholly outside it or on the other side; inconclusive = the CI straddles an "
                 "edge (the reason says how many images would decide); consistent with source = the source's own "
                 "summary figure checked (no data to recompute it from); skipped = what is missing, and how to "
                 "supply it. A zero-width "
                 "interval marks an exact figure with no sampling in it (a count, a dimension, an identity, or a "
                 "gate outcome whose figures' CIs, given in the reason, all lie on one side of their thresholds).")
    by_id: dict[str, list[Record]] = {}
    for r in records:
        by_id.setdefault(r.id, []).append(r)
    for fam, seed in catalog.SEEDS.items():
        lines += ["", f"## {fam}: {catalog.SEED_TITLES[fam]} (`seeds/{seed}`)", "",
                  "| id | tier | model | T | K | N | verdict | measured | 95% CI | expected | departures | reason |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for claim in (c for c in catalog.CLAIMS if c.family == fam):
            for r in by_id.get(claim.id, []) or [Record(claim.id, "-", "-", SKIPPED, reason="not evaluated in this run")]:
                ci = f"[{_fmt(r.ci[0])}, {_fmt(r.ci[1])}]" if r.ci else ""
                reason = r.reason.replace("|", "/").replace("\n", " ")
                T, K, N = (_cell(r.config.get(k)) for k in ("T", "trials", "n_images"))
                model = f"{r.model} ({r.variant})" if r.variant else r.model
                lines.append(f"| {r.id} | {r.tier} | {model} | {T} | {K} | {N} | {_MARK[r.verdict]} | "
                             f"{_fmt(r.measured)} | {ci} | {r.expected.replace('|', '/')} | {departures_text(r)} | "
                             f"{reason} |")
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


def read(out_dir: Path) -> tuple[list[Record], list[tuple[str, str]]]:
    """The records and figures of the report in ``out_dir`` (nothing when there is none or it cannot be read)."""
    path = Path(out_dir) / "claims.json"
    try:
        payload = json.loads(path.read_text())
        records = [Record(**{**d, "ci": tuple(d["ci"]) if d.get("ci") is not None else None})
                   for d in payload["records"]]
    except (OSError, ValueError, KeyError, TypeError):
        return [], []
    return records, [tuple(f) for f in payload.get("figures", [])]


def merge(old: list[Record], new: list[Record]) -> list[Record]:
    """The old report with every (claim, tier) evaluated in the new run replaced by the new run's records, in the
    registry's order: a partial run (``--tier math``) updates its part of a full report and keeps the rest."""
    done = {(r.id, r.tier) for r in new}
    kept = [r for r in old if (r.id, r.tier) not in done]
    order = {c.id: i for i, c in enumerate(catalog.CLAIMS)}
    tiers = {t: i for i, t in enumerate(catalog.TIERS)}
    return sorted(kept + new, key=lambda r: (order.get(r.id, len(order)), tiers.get(r.tier, len(tiers))))


def write(records: list[Record], out_dir: Path, figures: list[tuple[str, str]] = (), wall_s: float | None = None,
          notes: list[str] = ()) -> dict[str, Path]:
    """Write claims.json, claims.jsonl and claims.md under ``out_dir``; return their paths.

    All three are written to temporary files first and renamed into place only when all three are complete,
    so an interrupted write leaves the previous report whole (never a mix of old and new files)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    dicts = [r.as_dict() for r in records]
    paths = {"json": out_dir / "claims.json", "jsonl": out_dir / "claims.jsonl", "md": out_dir / "claims.md"}
    from .env import device, provenance

    payload = {"commit": records[0].commit if records else "unknown", "provenance": provenance(device()),
               "coverage": coverage(records),
               "figures": [list(f) for f in figures], "notes": list(notes), "records": dicts}
    texts = {"json": json.dumps(payload, indent=1, ensure_ascii=False),
             "jsonl": "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in dicts),
             "md": markdown(records, figures, wall_s, notes)}
    write_texts_atomic({paths[k]: texts[k] for k in paths}, last=paths["json"])  # claims.json last: it is what
    # a partial run merges into
    return paths
