"""claims.html in a real headless browser (Debian's chromium; `.ci/run` installs it): it renders, every figure
decodes, and it needs nothing from the network."""
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from mcdo import report
from mcdo.verify.records import Record


def _browser() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CI"):
        pytest.fail("CI must render the HTML report: `apt-get install chromium` (see .ci/run)")
    pytest.skip("no headless browser here (apt-get install chromium)")


def _run(browser, *args, timeout=120):
    return subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           "--disable-extensions", "--user-data-dir=" + args[0], *args[1:]],
                          capture_output=True, text=True, timeout=timeout)


def _report(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot(np.arange(5), np.arange(5) ** 2)
    fig.savefig(tmp_path / "curve.png")
    plt.close(fig)
    records = [Record("MCD-02", "math", "simulation", "reproduced", 0.1, (0.05, 0.15), reason="a <b>reason</b>"),
               Record("BVL-03", "proxy", "proxy-softmax", "not reproduced", 0.2, (0.1, 0.3)),
               Record("BVL-03", "proxy", "proxy-sigmoid", "reproduced", -0.2, (-0.3, -0.1)),
               Record("OOD-03", "gpu", "clip-vit-b-16", "skipped", reason="no CUDA GPU"),
               Record("OOD-05", "gpu", "siglip-vit-b-16", "skipped", reason="no CUDA GPU")]
    return report.write(records, tmp_path, [("a curve", "curve.png"), ("a second look", "curve.png")])


def test_claims_html_renders_with_every_figure_in_a_headless_browser(tmp_path):
    browser = _browser()
    paths = _report(tmp_path)
    page = paths["html"].read_text()
    assert "http://" not in page and "https://" not in page  # self-contained: nothing to fetch
    assert "&lt;b&gt;reason&lt;/b&gt;" in page  # text is escaped, never markup
    url = paths["html"].resolve().as_uri()
    dom = _run(browser, str(tmp_path / "profile1"), "--virtual-time-budget=5000", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = re.search(r"<body[^>]*>", dom.stdout).group(0)
    assert 'data-figures="2"' in body and 'data-figures-loaded="2"' in body, body
    shot = tmp_path / "shot.png"
    res = _run(browser, str(tmp_path / "profile2"), f"--screenshot={shot}", "--window-size=1200,1600", url)
    assert res.returncode == 0 and shot.is_file() and shot.stat().st_size > 0, res.stderr[-2000:]
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("L"))
    assert pixels.min() < 100 and pixels.max() > 200  # text on a page, not a blank screen


def test_claims_md_opens_with_the_grid_and_collapses_skips(tmp_path):
    md = _report(tmp_path)["md"].read_text()
    grid = [line for line in md.splitlines() if line.startswith("| BVL-03 |")][0]
    assert "✅1 ❌1" in grid  # a cell whose records differ: each verdict with its count
    assert [line for line in md.splitlines() if line.startswith("| MCD-02 |")][0].count("✅") == 1
    lines = md.splitlines()
    assert lines.index([x for x in lines if x.startswith("| id | claim |")][0]) < 12  # the grid comes first
    assert sum("no CUDA GPU" in x for x in lines) == 1  # two skips, one reason, one line
    assert "**Claims**: 41" in md
