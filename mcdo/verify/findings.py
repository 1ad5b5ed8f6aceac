"""The measured figures behind ``catalog.FINDINGS``, as data, and the check that keeps them current.

``findings.json`` holds, for each (claim, tier) measured not to reproduce, the verdict, value and CI of every
record of a run. The text a strict-xfail test and the report show is generated from it (``text``), so it cannot
drift from the numbers; ``check`` compares fresh records with it and raises ``FindingDrift`` (not an
``AssertionError``, so a strict xfail never absorbs it) when a figure moved. After a change that moves them on
purpose, rewrite the data from a run's records:

    python -m mcdo.verify.findings reports/claims.json
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from . import catalog
from .records import Record

PATH = Path(__file__).with_name("findings.json")
# measured values may move this much between machines (a proxy retrained on another CPU) before a finding is stale;
# or, where larger, by the recorded CI's half-width (``_close``). The verdict itself must not change.
ATOL, RTOL = 0.02, 0.05


class FindingDrift(Exception):
    """A finding's recorded figures no longer match what the code measures."""


def load() -> dict[str, list[dict]]:
    return json.loads(PATH.read_text()) if PATH.is_file() else {}


def _key(claim_id: str, tier: str) -> str:
    return f"{claim_id}/{tier}"


def label(r) -> str:
    """A record's row in a finding: its model, with its variant when it has one (a record or its JSON)."""
    model, variant = (r["model"], r.get("variant")) if isinstance(r, dict) else (r.model, r.variant)
    return f"{model} [{variant}]" if variant else model


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.3g}" if abs(x) >= 100 else f"{x:.3f}"


def text(claim_id: str, tier: str) -> str:
    """The finding's meaning and its figures, per model, generated from the data."""
    rows = load().get(_key(claim_id, tier), [])
    figures = "; ".join(f"{r['model']}: {r['verdict']} {_fmt(r['measured'])}"
                        + (f" [{_fmt(r['ci'][0])}, {_fmt(r['ci'][1])}]" if r.get("ci") else "") for r in rows)
    return catalog.FINDINGS[(claim_id, tier)] + (f" (measured: {figures})" if figures else "")


def _close(a, b, spread: float = 0.0) -> bool:
    """Whether a fresh figure ``a`` still says what the recorded ``b`` says: within 0.02 / 5%, or within the recorded
    CI's half-width ``spread`` when that is larger (a figure from a few seeds' t interval moves by about that much
    when the proxies are retrained on a CPU with other instructions, as a reseeded run would)."""
    if a is None or b is None:
        return a is b
    return abs(a - b) <= max(ATOL, RTOL * abs(b), spread)


def _same_verdict(r: Record, old: dict) -> bool:
    """The recorded verdict, or a move between inconclusive and a decided verdict by figures within 0.02 / 5%: a CI
    edge sitting on the verdict's threshold crosses it when the proxies are retrained on another CPU (measured:
    PRB-04 seed 0 ridge, [-0.001, +0.057] with AVX-512 kernels, [+0.0005, +0.066] with AVX2). Reproduced against
    not reproduced is always drift."""
    if r.verdict == old["verdict"]:
        return True
    if "inconclusive" not in (r.verdict, old["verdict"]) or r.ci is None or not old.get("ci"):
        return False
    return _close(r.measured, old["measured"]) and all(_close(a, b) for a, b in zip(r.ci, old["ci"]))


def check(claim_id: str, tier: str, records: list[Record]) -> None:
    """Raise ``FindingDrift`` unless the fresh records have the finding's models, verdicts and figures."""
    rows = {r["model"]: r for r in load().get(_key(claim_id, tier), [])}
    if not rows:
        raise FindingDrift(f"{claim_id}/{tier} is a finding with no figures in {PATH.name}: run "
                           "`python -m mcdo.verify.findings reports/claims.json` after `mcdo claims`")
    fresh = {label(r): r for r in records}
    problems = []
    if set(fresh) != set(rows):
        problems.append(f"models {sorted(fresh)} vs recorded {sorted(rows)}")
    for model in set(fresh) & set(rows):
        r, old = fresh[model], rows[model]
        ci = list(r.ci) if r.ci else None
        spread = (old["ci"][1] - old["ci"][0]) / 2 if old.get("ci") else 0.0
        if (not _same_verdict(r, old) or not _close(r.measured, old["measured"], spread)
                or (ci is None) != (old.get("ci") is None)
                or (ci and not all(_close(a, b, spread) for a, b in zip(ci, old["ci"])))):
            problems.append(f"{model}: now {r.verdict} {r.measured} {ci}, recorded {old['verdict']} "
                            f"{old['measured']} {old.get('ci')}")
    if problems:
        raise FindingDrift(f"{claim_id}/{tier}: the finding's figures moved ({'; '.join(problems)}); if on purpose, "
                           "rewrite them: python -m mcdo.verify.findings reports/claims.json")


def update(report_json: Path) -> dict[str, list[dict]]:
    """Rewrite the figures of every finding from a report's records (``mcdo claims`` output)."""
    records = json.loads(Path(report_json).read_text())["records"]
    data = {}
    for claim_id, tier in catalog.FINDINGS:
        rows = [dict(model=label(r), verdict=r["verdict"], measured=r["measured"], ci=r["ci"])
                for r in records if r["id"] == claim_id and r["tier"] == tier and r["verdict"] != "skipped"]
        if rows:
            data[_key(claim_id, tier)] = rows
    PATH.write_text(json.dumps(data, indent=1) + "\n")
    return data


if __name__ == "__main__":
    got = update(Path(sys.argv[1] if len(sys.argv) > 1 else "reports/claims.json"))
    missing = [f"{c}/{t}" for c, t in catalog.FINDINGS if _key(c, t) not in got]
    print(f"wrote {PATH} ({len(got)} findings)" + (f"; not in that report: {', '.join(missing)}" if missing else ""))
