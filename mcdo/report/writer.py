"""Records -> ``reports/``: claims.json (all records and the runs they came from), claims.jsonl (one record per
line; during a run, its journal: ``mcdo.journal``), claims.md (``markdown``) and claims.html (``html``), written
together; and the reading and merging a partial run needs."""
from __future__ import annotations

import json
from pathlib import Path

from ..io import write_texts_atomic
from ..verify import catalog
from ..verify.records import Record
from .html import page
from .markdown import markdown
from .summary import coverage, held_runs

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
    runs = held_runs(records, runs or {})
    dicts = [r.as_dict() for r in records]
    paths = {"json": out_dir / "claims.json", "jsonl": out_dir / "claims.jsonl", "md": out_dir / "claims.md",
             "html": out_dir / "claims.html"}
    from ..env import device, provenance

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
    texts["html"] = page(records, out_dir, figures, wall_s, notes, runs)
    write_texts_atomic({paths[k]: texts[k] for k in paths}, last=paths["json"])  # claims.json last: it is what
    # a partial run merges into
    return paths
