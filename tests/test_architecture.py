"""The house by stage: a module's stage is its package under ``harness/``, and imports run one way down the
pipeline core → data → train → measure → analysis → claims → report → launch, with no training code below
analysis (the data walk: config → run → artifacts on disk → analysis → report)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("core", "data", "train", "measure", "analysis", "claims", "report", "launch")
# Measurement, analysis, claims and report read a trained model or its artifacts: they never import training code.
TRAINING_FREE = ("measure", "analysis", "claims", "report")
# The package itself, its console entry and the `python -m harness.<x>` shims are the top of the house.
ENTRY = ("harness", "harness.__main__", "harness.run", "harness.analyze", "harness.bench")


def import_graph(pkg: Path = ROOT / "harness") -> dict[str, set[str]]:
    """Module -> harness modules it imports (at any depth of the file, lazy imports included)."""
    mods = {}
    for f in pkg.rglob("*.py"):
        parts = f.relative_to(pkg.parent).with_suffix("").parts
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    edges: dict[str, set[str]] = {m: set() for m in mods}
    for m, f in mods.items():
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            for t in targets:
                r = resolve(t) if t.startswith("harness") else None
                if r and r != m and not (mods[r].name == "__init__.py" and m.startswith(r + ".")):
                    edges[m].add(r)
    return edges


def stage_of(module: str) -> str:
    """``harness.<stage>....`` -> stage; the entry modules are ``launch``; anything else is not in the house."""
    if module in ENTRY:
        return "launch"
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in STAGES:
        return parts[1]
    raise AssertionError(f"{module} is in no stage: put it in one of harness/{{{','.join(STAGES)}}}/")


def may_import(stage: str, target: str) -> bool:
    if target == "train" and stage in TRAINING_FREE:
        return False
    return STAGES.index(target) <= STAGES.index(stage)


def wrong_edges(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    return sorted((m, t) for m in edges for t in edges[m] if not may_import(stage_of(m), stage_of(t)))


def cycles(edges: dict[str, set[str]]) -> list[str]:
    """Modules that reach themselves."""
    found = []
    for start in edges:
        seen, stack = set(), list(edges[start])
        while stack:
            m = stack.pop()
            if m == start:
                found.append(start)
                break
            if m not in seen:
                seen.add(m)
                stack.extend(edges[m])
    return found


def test_every_module_is_in_a_stage_and_imports_run_down_the_stage_order():
    edges = import_graph()
    assert {stage_of(m) for m in edges} == set(STAGES)  # every stage is a package with modules, none stray
    assert wrong_edges(edges) == []
    assert cycles(edges) == []


def test_the_stage_check_catches_a_back_edge_and_a_cycle(tmp_path):
    """The check is not vacuous: an analysis module importing training code, a claim importing the report, a
    module at the package root and a cycle are each caught, on a hand-built package."""
    pkg = tmp_path / "harness"
    files = {"__init__.py": "", "core/__init__.py": "", "core/a.py": "import harness.core.b\n",
             "core/b.py": "from harness.core import a\n", "train/__init__.py": "", "train/t.py": "",
             "analysis/__init__.py": "", "analysis/s.py": "from harness.train.t import x\n",
             "claims/__init__.py": "", "claims/c.py": "def f():\n    from harness.report.r import y\n",
             "report/__init__.py": "", "report/r.py": "from harness.claims.c import f\n"}
    for name, text in files.items():
        (pkg / name).parent.mkdir(parents=True, exist_ok=True)
        (pkg / name).write_text(text)
    edges = import_graph(pkg)
    assert wrong_edges(edges) == [("harness.analysis.s", "harness.train.t"), ("harness.claims.c", "harness.report.r")]
    assert set(cycles(edges)) == {"harness.core.a", "harness.core.b", "harness.claims.c", "harness.report.r"}
    (pkg / "stray.py").write_text("")
    with pytest.raises(AssertionError, match="harness.stray is in no stage"):
        stage_of("harness.stray")


def test_shared_import_graph_tool_is_clean():
    tool = ROOT.parent / "shared" / "tools" / "import_graph.py"
    if not tool.exists():
        pytest.skip("../shared/tools/import_graph.py not beside the checkout")
    r = subprocess.run([sys.executable, str(tool), str(ROOT / "harness")], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout
