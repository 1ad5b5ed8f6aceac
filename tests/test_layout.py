"""The layout a newcomer can navigate (issue 19): library code below, evaluators above, one way to do each thing.
Architecture checks on the source, so that a private import, an upward arrow or a second atomic writer cannot come
back unnoticed."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import mcdo

pytestmark = pytest.mark.math
ROOT = Path(mcdo.__file__).parent
MODULES = {p: ast.parse(p.read_text()) for p in ROOT.rglob("*.py")}
# the tools users point at their own model and data, and the library under them: none reaches up into the claims
TOOLS = ("bayes", "probe", "signatures", "data", "models", "stats", "oodbench.py", "sweep.py", "sweep_cli.py",
         "features.py", "zeroshot.py", "sampling.py", "reliability.py", "io.py", "ood.py", "scores.py")


def _rel(p: Path) -> str:
    return str(p.relative_to(ROOT))


def _imports(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            yield node.module or "", node.level, [a.name for a in node.names]


def test_no_module_imports_a_private_name_of_another():
    bad = [f"{_rel(p)}: from {'.' * lvl}{mod} import {n}" for p, t in MODULES.items() for mod, lvl, names in _imports(t)
           for n in names if n.startswith("_") and not n.startswith("__")]
    assert not bad


def test_no_tool_reaches_up_into_the_claims_or_the_report():
    bad = []
    for p, t in MODULES.items():
        if not _rel(p).startswith(TOOLS):
            continue
        for mod, lvl, names in _imports(t):
            target = mod.split(".") if lvl == 0 else mod.split(".")
            if any(part in ("verify", "report") for part in target) or (not mod and {"verify", "report"} & set(names)):
                bad.append(f"{_rel(p)} imports {mod or names}")
    assert not bad


def test_files_are_renamed_into_place_only_by_mcdo_io():
    """Seven modules wrote their own temporary-file-and-rename; now mcdo.io does it for all of them."""
    bad = []
    for p, t in MODULES.items():
        if _rel(p) == "io.py":
            continue
        for node in ast.walk(t):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("rename",) \
                    or (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and node.func.attr == "replace" and getattr(node.func.value, "id", None) == "os"):
                bad.append(f"{_rel(p)}:{node.lineno}")
    assert not bad


def test_names_that_collided_are_distinct():
    """Two ``image_features``, two ``SCORES``, two weight fingerprints and ``stats`` beside ``signatures.stats``
    made a reader guess which was meant."""
    defined: dict[str, list[str]] = {}
    for p, t in MODULES.items():
        for node in t.body:
            names = [node.name] if isinstance(node, (ast.FunctionDef, ast.ClassDef)) else \
                [x.id for x in getattr(node, "targets", []) if isinstance(x, ast.Name)]
            for n in names:
                defined.setdefault(n, []).append(_rel(p))
    for name in ("image_features", "SCORES", "fingerprint", "weights_fingerprint", "kurtosis", "predicted_snr",
                 "passes_needed", "score"):
        assert len(defined.get(name, [])) <= 1, (name, defined[name])
    assert not (ROOT / "signatures" / "stats.py").exists()


def test_figures_are_declared_beside_their_evaluators():
    """figures.py draws the recorded folder only; every other figure is registered by the evaluator module whose
    data it draws, so no figure reads another module's memo keys."""
    from mcdo.verify import engine

    tree = MODULES[ROOT / "figures.py"]
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr == "memo"]
    makers = engine.figure_makers()
    assert {fn.__module__.rsplit(".", 2)[-2] for fn in makers.values()} == {"mcd", "ood", "bvl", "icl", "prb"}


def test_the_reliability_experiment_is_library_code():
    """One implementation of 'K trials of T passes' (mcdo.reliability), used by the proxy tier, the gpu tier and
    mcdo sweep; the proxy tier and the sweep no longer call the sampler themselves."""
    for rel in ("verify/proxy_measure.py", "verify/mcd/gpu.py", "sweep.py"):
        assert "run_trials(" in (ROOT / rel).read_text(), rel
    for rel in ("verify/proxy_measure.py", "sweep.py"):
        calls = [n for n in ast.walk(MODULES[ROOT / rel]) if isinstance(n, ast.Call)
                 and getattr(n.func, "id", getattr(n.func, "attr", None)) == "mc_sample"]
        assert not calls, rel


def test_importing_mcdo_leaves_hugging_face_online_and_loads_run_offline():
    """Issue 23: ``import mcdo`` set HF_HUB_OFFLINE for the whole process. Now only mcdo's own loads and commands
    run offline (and restore the caller's setting after); a fresh interpreter importing mcdo keeps its own."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    code = ("import os, mcdo, huggingface_hub.constants as c\n"
            "from mcdo.env import offline\n"
            "assert 'HF_HUB_OFFLINE' not in os.environ and not c.HF_HUB_OFFLINE\n"
            "with offline():\n"
            "    assert os.environ['HF_HUB_OFFLINE'] == '1' and c.HF_HUB_OFFLINE\n"
            "assert 'HF_HUB_OFFLINE' not in os.environ and not c.HF_HUB_OFFLINE\n"
            "from mcdo.models import load\n"
            "load('tiny-clip', pretrained=False)\n"
            "assert 'HF_HUB_OFFLINE' not in os.environ and not c.HF_HUB_OFFLINE\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
