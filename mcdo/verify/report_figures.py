"""The report's figures: the recorded tier's (``figures.reliability_vs_T``) and every figure declared beside the
evaluators whose data it draws (``@engine.draws``), each drawn when its inputs are there."""
from __future__ import annotations

from pathlib import Path

from ..errors import MissingResource
from .. import figures as plotting
from .engine import Context
from .records import Record


def make_figures(records: list[Record], ctx: Context | None, report_dir: Path
                 ) -> tuple[list[tuple[str, str]], list[str]]:
    """Every figure whose inputs are available, and a note for each that could not be drawn (with why): a figure
    never costs the records of a run. A figure whose inputs are absent (no recorded folder, no proxy pass in this
    run) is left out silently. The recorded tier's figure is drawn here; every other is declared beside the
    evaluators whose data it draws (``@engine.draws``)."""
    from . import engine

    out = report_dir / "figures"
    out.mkdir(parents=True, exist_ok=True)
    makers = {"reliability vs T": lambda c, o: plotting.reliability_vs_T(o)}
    if ctx is not None:
        makers.update(engine.figure_makers())
    figures, notes = [], []
    for name, maker in makers.items():
        try:
            fig = maker(ctx, out)
        except MissingResource:
            continue
        except Exception as e:  # a damaged input or a plotting bug: say so in the report, keep going
            notes.append(f"figure not drawn: {name}: {type(e).__name__}: {e}")
            continue
        if fig:
            figures.append((fig[0], str(Path("figures") / fig[1])))
    return figures, notes
