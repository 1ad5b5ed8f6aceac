"""A claim's whole entry as it judges: what ``mcdo claims --list`` prints. The registry still spreads a claim over
several tables (``catalog``: statement, tiers, margins, extra tiers, findings; ``sources``: what the source expects,
its configuration, the declared departures); this gathers every one that decides a verdict into one view per claim,
so what a user is shown as the registry is what judges."""
from __future__ import annotations

from dataclasses import asdict

from . import catalog, findings, sources


def _expect(e) -> dict | list | None:
    if e is None:
        return None
    if isinstance(e, sources.Expect):
        return asdict(e)
    if isinstance(e, dict):
        return {k: _expect(v) for k, v in e.items()}
    return [_expect(x) for x in e]


def entry(claim_id: str) -> dict:
    """Everything that judges ``claim_id``: its statement and tiers; the source's expectation (``EXPECT``) and
    configuration (``SOURCE``); the margins of its figures with their reasons; the departures declared per tier
    (its own and its tiers'); the tiers beyond CLAIMS.md with why; and its registered findings with their figures."""
    c = catalog.get(claim_id)
    margins = {(k if isinstance(k, str) else k[1]): asdict(m) for k, m in catalog.MARGINS.items()
               if k == claim_id or (isinstance(k, tuple) and k[0] == claim_id)}
    departures = {t: {**sources.DEPARTURES.get(t, {}), **sources.DEPARTURES.get((claim_id, t), {})} for t in c.tiers}
    finding = {t: dict(text=catalog.FINDINGS[(claim_id, t)], figures=findings.load().get(f"{claim_id}/{t}", []))
               for t in c.tiers if (claim_id, t) in catalog.FINDINGS}
    return dict(id=c.id, source_note=c.seed, statement=c.statement, expected_text=c.expected,
                comparison=str(c.comparison), tiers=[str(t) for t in c.tiers],
                expect=_expect(sources.EXPECT.get(claim_id)), source_configuration=sources.SOURCE.get(claim_id),
                gate=dict(sources.GATE) if c.comparison == "gate" else None, margins=margins, departures={t: d for t, d in departures.items() if d},
                extra_tiers=catalog.EXTRA_TIERS.get(claim_id, {}), findings=finding, needs=c.needs)
