"""Where things live (issue 20): measured results in results/, the measurements that chose study settings in
sweeps/, and nothing measured inside the package (its config tree holds configs only)."""

from __future__ import annotations

from tests.conftest import ROOT


def test_no_measured_results_or_images_in_the_package():
    pkg = ROOT / "harness"
    found = [str(p.relative_to(ROOT)) for p in pkg.rglob("*")
             if p.is_file() and (p.suffix in (".png", ".md") or "measured" in p.name)]
    assert found == []


def test_results_name_the_commit_they_were_measured_on():
    import re

    for path in sorted((ROOT / "results").glob("*.md")) + sorted((ROOT / "sweeps").glob("*.md")):
        assert re.search(r"\b[0-9a-f]{7,40}\b", path.read_text()), f"{path.name} names no commit"
