"""The report's data model, shared by its markdown and HTML renderings: verdict marks and symbols, number
formatting, the claim x tier cells, coverage, the header lines, the runs a report holds and the findings' rows."""
from __future__ import annotations

import math
import time
from collections import Counter

from ..verify import catalog
from ..verify.records import SKIPPED, Record

MARK = {"reproduced": "✅ reproduced", "not reproduced": "❌ not reproduced", "inconclusive": "❔ inconclusive",
         "consistent with source": "☑ consistent with source", "skipped": "⏭ skipped",
         "smoke run": "⚙ smoke run (the chain ran on shrunk data; no verdict)"}


def fmt(x) -> str:
    if x is None:
        return ""
    if isinstance(x, str):
        return x
    if not math.isfinite(x):
        return str(x)
    a = abs(x)
    return f"{x:.3g}" if (a >= 1000 or (0 < a < 0.001)) else f"{x:.3f}"


def config_cell(x) -> str:
    """A configuration value in a table cell: a list as 16->64, nothing when the record does not state it."""
    if x is None:
        return ""
    return "->".join(map(str, x)) if isinstance(x, (list, tuple)) else str(x)


def departures_text(r: Record) -> str:
    """Where the run's configuration differs from the source's, each with its reason, for a table cell."""
    return "; ".join(f"{k}: {config_cell(v.get('run'))} not {config_cell(v.get('source'))} ({v.get('reason', '')})"
                     for k, v in (r.departures or {}).items()).replace("|", "/")


def coverage(records: list[Record], tiers: tuple[str, ...] = catalog.TIERS) -> dict[str, tuple[int, int]]:
    """Per tier: (claims with a verdict, claims registered on that tier)."""
    out = {}
    for tier in tiers:
        registered = {c.id for c in catalog.CLAIMS if tier in c.tiers}
        judged = {r.id for r in records if r.tier == tier and r.verdict != SKIPPED}
        out[tier] = (len(judged & registered), len(registered))
    return out


def held_runs(records: list[Record], runs: dict[str, dict]) -> dict[str, dict]:
    """The runs that still hold records, each with how many (a run whose records were all replaced is dropped)."""
    held = Counter(r.run for r in records)
    out = {}
    for run_id, n in held.items():
        info = dict(runs.get(run_id) or {"commit": next((r.commit for r in records if r.run == run_id), "unknown")})
        out[run_id] = dict(info, records=n)
    return out


def header(records: list[Record], wall_s: float | None, runs: dict[str, dict]) -> list[str]:
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


SYMBOL = {"reproduced": "✅", "not reproduced": "❌", "inconclusive": "❔", "consistent with source": "☑",
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


def cell_text(count: Counter | None, registered: bool, symbols: dict[str, str] = SYMBOL) -> str:
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
    return " ".join(f"{symbols[v]}{n}" for v, n in sorted(judged.items(), key=lambda kv: list(SYMBOL).index(kv[0])))


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
    from ..verify import findings

    present = {(r.id, r.tier) for r in records if r.verdict != SKIPPED}
    return [(c, t, findings.text(c, t)) for (c, t) in catalog.FINDINGS if (c, t) in present]


