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


# the claims and their report sit above the library: the evaluators, the report, the CLI, the doctor (the claims'
# own checks) and the run journal; the test helpers may import anything
ABOVE = ("mcdo.verify", "mcdo.report", "mcdo.cli", "mcdo.doctor", "mcdo.journal", "mcdo.testing", "mcdo.testing_hub")


def _modname(p: Path) -> str:
    parts = list(p.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(sources: dict[str, tuple[str, bool]]) -> dict[str, set[str]]:
    """Module -> the mcdo modules it imports anywhere (top level or inside a function), from ``{module: (source,
    is_package)}``; relative imports resolved, ``from pkg import mod`` counted as importing ``pkg.mod``."""
    def resolve(cur, is_pkg, mod, level, names):
        if level:
            base = cur.split(".") if is_pkg else cur.split(".")[:-1]
            target = ".".join(base[:len(base) - (level - 1)] + ([mod] if mod else []))
        else:
            target = mod or ""
        return [f"{target}.{n}" if f"{target}.{n}" in sources else target for n in names
                if f"{target}.{n}" in sources or target in sources]

    graph = {}
    for m, (src, is_pkg) in sources.items():
        edges = set()
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.ImportFrom):
                edges.update(resolve(m, is_pkg, node.module, node.level, [a.name for a in node.names]))
            elif isinstance(node, ast.Import):
                edges.update(a.name for a in node.names if a.name in sources)
        graph[m] = edges - {m}
    return graph


def reaches(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, stack = set(), [start]
    while stack:
        for y in graph.get(stack.pop(), ()):
            if y not in seen:
                seen.add(y)
                stack.append(y)
    return seen


def import_cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The import circles: strongly connected groups of two or more modules."""
    return [c for c in {frozenset({m} | {x for x in reaches(graph, m) if m in reaches(graph, x)}) for m in graph}
            if len(c) > 1]


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Library modules that reach, through any chain of imports, a module of the claims or the report."""
    return sorted(f"{m} -> {sorted(x for x in reaches(graph, m) if x.startswith(ABOVE))[:3]}" for m in graph
                  if not m.startswith(ABOVE) and m != "mcdo" and any(x.startswith(ABOVE) for x in reaches(graph, m)))


def private_attribute_reads(sources: dict[str, tuple[str, bool]]) -> list[str]:
    """``module._name`` reads of another mcdo module's private names, through a module bound by an import."""
    bad = []
    for m, (src, is_pkg) in sources.items():
        tree = ast.parse(src)
        bound = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                for a in node.names:
                    target = f"{node.module}.{a.name}" if node.module else a.name
                    if node.level or target.startswith("mcdo"):
                        if any(k.endswith("." + a.name) or k == target for k in sources):
                            bound.add(a.asname or a.name)
            elif isinstance(node, ast.Import):
                bound.update((a.asname or a.name).split(".")[0] for a in node.names if a.name.startswith("mcdo"))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in bound
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                bad.append(f"{m}:{node.lineno} {node.value.id}.{node.attr}")
    return bad


SOURCES = {_modname(p): (p.read_text(), p.name == "__init__.py") for p in ROOT.rglob("*.py")}


def test_no_arrow_up_no_import_circle_no_private_read_by_attribute():
    graph = import_graph(SOURCES)
    up, cycles, private = upward_imports(graph), import_cycles(graph), private_attribute_reads(SOURCES)
    print(f"import picture: {len(graph)} modules, {sum(map(len, graph.values()))} imports, {len(up)} arrows up, "
          f"{len(cycles)} import circles, {len(private)} private names read by attribute")
    assert not up and not cycles and not private, (up, cycles, private)


def test_the_layout_checks_catch_what_is_planted():
    """Each check fails on a planted defect: a tool two imports below the claims, a circle through a function-level
    import, a private name read through a module import."""
    planted = {"mcdo": ("", True), "mcdo.sweep": ("from .figures import styled\n", False),
               "mcdo.figures": ("def f():\n    from .verify import engine\n", False),
               "mcdo.verify": ("", True), "mcdo.verify.engine": ("from ..stats import x\n", False),
               "mcdo.stats": ("def g():\n    from ..verify import engine\n", True),
               "mcdo.cli": ("from . import report\nreport._fmt(1)\n", False), "mcdo.report": ("", True)}
    graph = import_graph(planted)
    assert {u.split(" ")[0] for u in upward_imports(graph)} == {"mcdo.sweep", "mcdo.figures", "mcdo.stats"}
    assert import_cycles(graph) == [{"mcdo.stats", "mcdo.verify.engine"}]
    assert private_attribute_reads(planted) == ["mcdo.cli:2 report._fmt"]


def test_figures_are_declared_beside_their_evaluators():
    """figures.py draws the recorded folder only; every other figure is registered by the evaluator module whose
    data it draws, so no figure reads another module's memo keys."""
    from mcdo.verify import engine

    tree = MODULES[ROOT / "figures.py"]
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr == "memo"]
    assert "verify" not in (ROOT / "figures.py").read_text().split('"""', 2)[2]  # the style module: no claims
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
