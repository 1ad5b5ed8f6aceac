"""Issue 23.6: figures read at a glance. One colour per loss family in the report and in the tools (the sweep draws
a CLIP-loss model in the report's CLIP blue), CI bars where a point has a CI, every line and band named in a legend,
blur strength stated."""
from __future__ import annotations

import numpy as np
import pytest

from mcdo import figures


@pytest.fixture
def kept_figures(monkeypatch):
    """The figures a function draws, kept open (they are closed after saving otherwise)."""
    plt = figures.pyplot()
    kept = []
    monkeypatch.setattr(plt, "close", lambda fig=None: kept.append(fig))
    return kept


def test_one_colour_per_loss_family_everywhere():
    blue, orange = figures.FAMILY_COLOURS["softmax"], figures.FAMILY_COLOURS["sigmoid"]
    for name in ("clip-vit-b-32", "proxy-softmax", "clip_b32", "ViT-B-16-CLIPA:datacomp1b", "softmax"):
        assert figures.family_colour(name) == blue, name
    for name in ("siglip2-vit-b-16", "proxy-sigmoid", "ViT-SO400M-14-SigLIP2-378", "hf-hub:timm/ViT-B-16-SigLIP"):
        assert figures.family_colour(name) == orange, name
    for name in ("timm:resnet50", "ViT-L-14-quickgelu:/models/ft.pt"):  # no family in the name: grey, never a guess
        assert figures.family_colour(name) == figures.OTHER_COLOUR, name
    style = figures.styled(["clip-vit-b-32", "clip-vit-b-16", "siglip2-vit-b-16"])
    assert style["clip-vit-b-32"]["color"] == style["clip-vit-b-16"]["color"] == blue
    assert (style["clip-vit-b-32"]["marker"], style["clip-vit-b-32"]["ls"]) != \
        (style["clip-vit-b-16"]["marker"], style["clip-vit-b-16"]["ls"])  # told apart within the family


def _cell(model: str, T: int, snr: float, ci: tuple[float, float] | None) -> dict:
    return dict(cell=dict(model=model, p=0.01, mode="as_published", T=T, data="world"),
                gate=dict(snr=snr, icc=snr / (1 + snr)),
                **({"gate_ci": {"snr": ci, "icc": (ci[0] / (1 + ci[0]), ci[1] / (1 + ci[1]))}} if ci else {}))


def test_the_sweep_figure_has_family_colours_ci_bars_and_a_legend_for_the_gate(tmp_path, kept_figures):
    from mcdo.sweep import _figure

    res = [_cell("proxy-softmax", 16, 0.4, (0.3, 0.5)), _cell("proxy-softmax", 64, 1.5, (1.2, 1.9)),
           _cell("proxy-sigmoid", 16, 2.2, (1.9, 2.6)), _cell("proxy-sigmoid", 64, 8.1, None)]
    _figure(res, tmp_path / "sweep.png")
    assert (tmp_path / "sweep.png").stat().st_size > 0
    (fig,) = kept_figures
    snr_ax, icc_ax = fig.axes
    bars = {c.get_label(): c for c in snr_ax.containers}
    soft, sig = bars["proxy-softmax p=0.01 as_published"], bars["proxy-sigmoid p=0.01 as_published"]
    assert soft.lines[0].get_color() == figures.FAMILY_COLOURS["softmax"]
    assert sig.lines[0].get_color() == figures.FAMILY_COLOURS["sigmoid"]
    assert soft.has_yerr and sig.has_yerr
    segments = soft.lines[2][0].get_segments()  # the vertical bars: from the CI's low end to its high end
    assert [tuple(np.round(s[:, 1], 6)) for s in segments] == [(0.3, 0.5), (1.2, 1.9)]
    legend = [t.get_text() for t in icc_ax.get_legend().get_texts()]
    assert "gate threshold" in legend and "bootstrap 95% CI" in icc_ax.get_legend().get_title().get_text()


def test_the_active_learning_band_is_named_in_the_legend(tmp_path, kept_figures):
    from types import SimpleNamespace

    from mcdo.bayes.figures import learning_curves

    runs = [SimpleNamespace(labels=[10, 20, 30], accuracy=[0.2 + k / 10, 0.3, 0.4]) for k in range(3)]
    learning_curves({"proxy-softmax": {"random": runs}}, tmp_path / "al.png")
    (fig,) = kept_figures
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["random: mean of 3 seeds", "random: band from the lowest to the highest seed"]


def test_the_report_proxy_figures_use_the_family_colours_and_state_the_blur(tmp_path, kept_figures):
    from mcdo.verify import engine
    from mcdo.verify.mcd.proxy import blur_figure, reliability_figure
    from mcdo.verify.proxy_measure import MEMO, SETTINGS, ProxyMeasure

    rng = np.random.default_rng(0)

    def measure(loss, seed):
        u = rng.gamma(2.0, 1.0, 50)
        trials = {T: u[None] + rng.normal(0, 1.0 / T, (5, 50)) for T in (4, 16, 64)}
        blurred = {w: u * rng.uniform(0.5, 1.5, 50) for w in ("light", "heavy")}
        z = np.zeros(50)
        return ProxyMeasure(loss, seed, 0.9, trials, u, z, z.astype(int), z, z, blurred)

    ctx = engine.Context(progress=False)
    ctx.memo[MEMO] = {(loss, s): measure(loss, s) for loss in ("softmax", "sigmoid") for s in (0, 1)}
    reliability_figure(ctx, tmp_path)
    blur_figure(ctx, tmp_path)
    rel, blur = kept_figures
    lines = {ln.get_label(): ln.get_color() for ln in rel.axes[0].get_lines() if not ln.get_label().startswith("_")}
    assert lines == {"softmax seed 0": "tab:blue", "softmax seed 1": "tab:blue", "sigmoid seed 0": "tab:orange",
                     "sigmoid seed 1": "tab:orange"}
    assert "gate threshold" in [t.get_text() for t in rel.axes[0].get_legend().get_texts()]
    for ax, which in zip(blur.axes, ("light", "heavy")):
        assert f"sigma {SETTINGS['blur_sigmas'][which]:g} px" in ax.get_title()


def test_a_failing_figure_write_leaves_the_previous_image_whole(tmp_path):
    """Issue 36.12: figures were written in place, so a failing write destroyed the previous PNG (bayes, probe,
    sweep) while the JSON beside it was written atomically. Every figure now goes through io.save_figure_atomic."""
    import ast
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import mcdo
    from mcdo.io import WriteFailed, save_figure_atomic

    path = tmp_path / "curve.png"
    fig = plt.figure()
    save_figure_atomic(fig, path, dpi=50)
    before = path.read_bytes()
    assert before[:4] == b"\x89PNG"

    def broken(f, **kw):
        f.write(b"half a picture")
        raise OSError(28, "No space left on device")

    fig.savefig = broken
    import pytest

    with pytest.raises(WriteFailed):
        save_figure_atomic(fig, path)
    assert path.read_bytes() == before and list(tmp_path.iterdir()) == [path]
    plt.close(fig)
    root = Path(mcdo.__file__).parent
    direct = [f"{p.relative_to(root)}:{n.lineno}" for p in root.rglob("*.py") if p.name != "io.py"
              for n in ast.walk(ast.parse(p.read_text()))
              if isinstance(n, ast.Call) and getattr(n.func, "attr", "") == "savefig"]
    assert direct == [], "figures written in place: " + ", ".join(direct)
