"""Records -> ``reports/``: claims.json (all records and the runs they came from), claims.jsonl (one record per
line; during a run, its journal: ``mcdo.journal``), claims.md (the claim x tier grid, the findings, then per
family the records) and claims.html (the same, one self-contained page: ``mcdo.report_html``)."""
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
         "consistent with source": "☑ consistent with source", "skipped": "⏭ skipped",
         "smoke run": "⚙ smoke run (the chain ran on shrunk data; no verdict)"}


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


def _held_runs(records: list[Record], runs: dict[str, dict]) -> dict[str, dict]:
    """The runs that still hold records, each with how many (a run whose records were all replaced is dropped)."""
    held = Counter(r.run for r in records)
    out = {}
    for run_id, n in held.items():
        info = dict(runs.get(run_id) or {"commit": next((r.commit for r in records if r.run == run_id), "unknown")})
        out[run_id] = dict(info, records=n)
    return out


def _header(records: list[Record], wall_s: float | None, runs: dict[str, dict]) -> list[str]:
    """Where the records came from: one run's commit and wall time, or, for a merged report, every run it holds."""
    if len(runs) <= 1:
        commit = records[0].commit if records else "unknown"
        return [f"Commit `{commit}`, {time.strftime('%Y-%m-%d %H:%M')}"
                + (f", wall time {wall_s:.0f} s" if wall_s else "") + "."]
    lines = [f"**Merged report**: {len(records)} records from {len(runs)} runs (each record names its run in "
             "claims.json; a partial run replaces only the claims and tiers it evaluated):", ""]
    for run_id, info in sorted(runs.items()):
        wall = f", wall time {info['wall_s']:.0f} s" if info.get("wall_s") is not None else ""
        lines.append(f"- {run_id or 'an earlier run (no run id)'}: commit `{info.get('commit', 'unknown')}`{wall}, "
                     f"{info['records']} records" + (f", `{info['command']}`" if info.get("command") else ""))
    return lines


_SYMBOL = {"reproduced": "✅", "not reproduced": "❌", "inconclusive": "❔", "consistent with source": "☑",
           "skipped": "⏭", "smoke run": "⚙"}


def short(statement: str, width: int = 64) -> str:
    """A claim's statement in a few words: cut at a word boundary, with an ellipsis when cut."""
    if len(statement) <= width:
        return statement
    return statement[:width].rsplit(" ", 1)[0].rstrip(",;:") + " …"


def cells(records: list[Record]) -> dict[tuple[str, str], Counter]:
    """Per (claim, tier): how many of its records have each verdict."""
    out: dict[tuple[str, str], Counter] = {}
    for r in records:
        out.setdefault((r.id, r.tier), Counter())[r.verdict] += 1
    return out


def cell_text(count: Counter | None, registered: bool, symbols: dict[str, str] = _SYMBOL) -> str:
    """One grid cell: nothing off the claim's tiers, · when not evaluated, one symbol when every judged record
    agrees, each verdict's symbol with its count when they differ, ⏭ when all skipped."""
    if not registered:
        return ""
    if not count:
        return "·"
    judged = {v: n for v, n in count.items() if v != SKIPPED}
    if not judged:
        return symbols[SKIPPED]
    if len(judged) == 1:
        return symbols[next(iter(judged))]
    return " ".join(f"{symbols[v]}{n}" for v, n in sorted(judged.items(), key=lambda kv: list(_SYMBOL).index(kv[0])))


def cell_summary(count: Counter | None) -> str:
    """What a cell says as one word for the headline: its one verdict, mixed, skipped or not evaluated."""
    judged = {v for v in (count or {}) if v != SKIPPED}
    if not count:
        return "not evaluated"
    return SKIPPED if not judged else next(iter(judged)) if len(judged) == 1 else "mixed"


def skip_groups(records: list[Record]) -> list[tuple[str, list[str]]]:
    """Skipped records grouped by their reason (one line per reason), each with the records it covers."""
    groups: dict[str, list[str]] = {}
    for r in records:
        if r.verdict == SKIPPED:
            groups.setdefault(r.reason.replace("\n", " "), []).append(f"{r.id}/{r.tier} {r.model}".rstrip(" -"))
    return sorted(groups.items(), key=lambda kv: -len(kv[1]))


def finding_rows(records: list[Record]) -> list[tuple[str, str, str]]:
    """The registry's findings for the (claim, tier) cells of this report: (claim, tier, text)."""
    from .verify import findings

    present = {(r.id, r.tier) for r in records if r.verdict != SKIPPED}
    return [(c, t, findings.text(c, t)) for (c, t) in catalog.FINDINGS if (c, t) in present]


def markdown(records: list[Record], figures: list[tuple[str, str]] = (), wall_s: float | None = None,
             notes: list[str] = (), runs: dict[str, dict] | None = None) -> str:
    """The claim x tier grid (one symbol per cell), the findings, then per family the judged records and the
    skipped ones collapsed into one line per reason; figures last."""
    cov = coverage(records)
    grid = cells(records)
    lines = ["# mcdo claims report", ""]
    lines += _header(records, wall_s, _held_runs(records, runs or {}))
    lines.append("")
    summary = Counter(cell_summary(grid.get((c.id, t))) for c in catalog.CLAIMS for t in c.tiers)
    lines.append(f"**Claims**: {len(catalog.CLAIMS)}, on {sum(summary.values())} claim x tier cells: "
                 + ", ".join(f"{v} {summary[v]}" for v in (*_SYMBOL, "mixed", "not evaluated") if summary.get(v)) + ".")
    lines.append("**Coverage** (claims with a verdict / claims on the tier): "
                 + ", ".join(f"{t} {a}/{b}" for t, (a, b) in cov.items()) + f". **Records**: {len(records)}.")
    lines += ["", "| id | claim | " + " | ".join(catalog.TIERS) + " |",
              "| --- | --- | " + " | ".join("---" for _ in catalog.TIERS) + " |"]
    for c in catalog.CLAIMS:
        lines.append(f"| {c.id} | {short(c.statement).replace('|', '/')} | "
                     + " | ".join(cell_text(grid.get((c.id, t)), t in c.tiers) for t in catalog.TIERS) + " |")
    lines += ["", "✅ reproduced, ❌ not reproduced, ❔ inconclusive, ☑ consistent with source, ⏭ skipped, · not "
              "evaluated in this run; a count beside a symbol when a cell's records differ (one per model or "
              "setting)."]
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
            ci = f"[{_fmt(r.ci[0])}, {_fmt(r.ci[1])}]" if r.ci else ""
            reason = r.reason.replace("|", "/").replace("\n", " ")
            T, K, N = (_cell(r.config.get(k)) for k in ("T", "trials", "n_images"))
            model = f"{r.model} ({r.variant})" if r.variant else r.model
            lines.append(f"| {r.id} | {r.tier} | {model} | {T} | {K} | {N} | {_MARK[r.verdict]} | "
                         f"{_fmt(r.measured)} | {ci} | {r.expected.replace('|', '/')} | {departures_text(r)} | "
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


def read(out_dir: Path) -> tuple[list[Record], list[tuple[str, str]]]:
    """The records and figures of the report in ``out_dir`` (nothing when there is none or it cannot be read)."""
    path = Path(out_dir) / "claims.json"
    try:
        payload = json.loads(path.read_text())
        records = [Record.from_dict({k: v for k, v in d.items() if k not in ("resume_key", "pair_count", "pair_index")})
                   for d in payload["records"]]
    except (OSError, ValueError, KeyError, TypeError):
        return [], []
    return records, [tuple(f) for f in payload.get("figures", [])]


def runs(out_dir: Path) -> dict[str, dict]:
    """The runs the report in ``out_dir`` holds records of (``claims.json``'s ``runs``), by run id."""
    try:
        got = json.loads((Path(out_dir) / "claims.json").read_text()).get("runs", {})
    except (OSError, ValueError, AttributeError):
        return {}
    return got if isinstance(got, dict) else {}


def merge(old: list[Record], new: list[Record]) -> list[Record]:
    """The old report with every (claim, tier) evaluated in the new run replaced by the new run's records, in the
    registry's order: a partial run (``--tier math``) updates its part of a full report and keeps the rest."""
    done = {(r.id, r.tier) for r in new}
    kept = [r for r in old if (r.id, r.tier) not in done]
    order = {c.id: i for i, c in enumerate(catalog.CLAIMS)}
    tiers = {t: i for i, t in enumerate(catalog.TIERS)}
    return sorted(kept + new, key=lambda r: (order.get(r.id, len(order)), tiers.get(r.tier, len(tiers))))


def write(records: list[Record], out_dir: Path, figures: list[tuple[str, str]] = (), wall_s: float | None = None,
          notes: list[str] = (), runs: dict[str, dict] | None = None) -> dict[str, Path]:
    """Write claims.json, claims.jsonl, claims.md and claims.html under ``out_dir``; return their paths.

    All four are written to temporary files first and renamed into place only when all three are complete,
    so an interrupted write leaves the previous report whole (never a mix of old and new files)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = _held_runs(records, runs or {})
    dicts = [r.as_dict() for r in records]
    paths = {"json": out_dir / "claims.json", "jsonl": out_dir / "claims.jsonl", "md": out_dir / "claims.md",
             "html": out_dir / "claims.html"}
    from .env import device, provenance

    payload = {"commit": records[0].commit if records else "unknown", "provenance": provenance(device()),
               "coverage": coverage(records),
               "runs": runs, "figures": [list(f) for f in figures], "notes": list(notes), "records": dicts}
    # each line as the run's journal writes it: the run's settings key, and its pair's record count and place, so
    # that a later --resume reuses a pair only when all its records are there (mcdo.journal)
    pair_size: dict[tuple, int] = {}
    for d in dicts:
        pair_size[(d["id"], d["tier"], d.get("run"))] = pair_size.get((d["id"], d["tier"], d.get("run")), 0) + 1
    seen: dict[tuple, int] = {}
    keyed = []
    for d in dicts:
        pair = (d["id"], d["tier"], d.get("run"))
        seen[pair] = seen.get(pair, -1) + 1
        key = runs.get(d.get("run"), {}).get("key")
        keyed.append(dict(d, resume_key=key, pair_count=pair_size[pair], pair_index=seen[pair]) if key else d)
    texts = {"json": json.dumps(payload, indent=1, ensure_ascii=False),
             "jsonl": "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in keyed),
             "md": markdown(records, figures, wall_s, notes, runs)}
    from .report_html import page

    texts["html"] = page(records, out_dir, figures, wall_s, notes, runs)
    write_texts_atomic({paths[k]: texts[k] for k in paths}, last=paths["json"])  # claims.json last: it is what
    # a partial run merges into
    return paths
