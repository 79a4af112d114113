"""The pair-study file: a YAML list of checkpoint pairs, checked before anything loads.

```yaml
name: my-study                      # optional (default: the file's stem)
pairs:
  - name: deepscaler                # optional, unique (default: the tuned checkpoint's last name part)
    base: deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B   # a hub id, a checkpoint dir or a model name (conf/model)
    tuned: agentica-org/DeepScaleR-1.5B-Preview
    base_revision: main             # optional, hub ids only (a branch, tag or commit)
    tuned_revision: main
    objective: rlvr                 # rlvr | sft | distillation | other
    algorithm: GRPO                 # free text, recorded
    dataset: DeepScaleR-Preview     # free text, recorded
    dtype: bfloat16                 # the storage dtype the source states (checked against the files)
    group: r1-distill-qwen-1.5b     # family key: pairs of one group are compared (default: the base)
    adapter: full                   # what was trained (default full)
    source: RL Finetunes Small Subnetworks (arXiv 2505.11711)
    note: free text
```

``pairs=<name>`` also finds a study shipped in ``harness/conf/pairs/`` (``pairs=catalog``: public pairs the papers
analysed). A relative checkpoint dir is read relative to the YAML file. A bad file, key or value raises
:class:`harness.analysis.geometry.analyze_run.OptionError` with one line naming it and what is valid (exit 2).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

from harness import CONF_DIR
from harness.analysis.geometry.analyze_run import OptionError
from harness.analysis.pairs import OBJECTIVES

DTYPES = ("float32", "bfloat16", "float16")
STUDY_KEYS = ("name", "description", "pairs")
REQUIRED = ("base", "tuned", "objective")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


@dataclass(frozen=True)
class PairSpec:
    """One pair of the study file (see the module doc); ``index`` is its place in the file."""

    name: str
    base: str
    tuned: str
    objective: str
    index: int = 0
    base_revision: str | None = None
    tuned_revision: str | None = None
    algorithm: str = ""
    dataset: str = ""
    dtype: str | None = None
    group: str = ""
    adapter: str = "full"
    source: str = ""
    note: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


PAIR_KEYS = tuple(f for f in PairSpec.__dataclass_fields__ if f != "index")


@dataclass(frozen=True)
class Study:
    name: str
    path: Path
    pairs: list[PairSpec]
    description: str = ""


def _bad(where: str, key: str, value: object, valid: str) -> OptionError:
    return OptionError(f"error: {where}: bad {key} {value!r}; valid: {valid}")


def default_name(ref: str) -> str:
    """A pair's default name: the last part of the tuned checkpoint's hub id or path."""
    return re.sub(r"[^A-Za-z0-9_.+-]", "-", Path(ref.rstrip("/")).name) or "pair"


def load_study(path: Path | str) -> Study:
    """Read and check a pair-study file (see the module doc)."""
    import yaml

    path = Path(path)
    shipped = CONF_DIR / "pairs" / f"{path}.yaml"
    if not path.is_file() and path.suffix == "" and shipped.is_file():
        path = shipped  # a study shipped with the harness, by name: pairs=catalog
    if not path.is_file():
        names = ", ".join(sorted(p.stem for p in (CONF_DIR / "pairs").glob("*.yaml")))
        raise OptionError(f"error: no such pairs file {str(path)!r}; valid: a YAML file listing pairs, or a "
                          f"shipped study: {names}")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise OptionError(f"error: pairs file {path}{line} is not valid YAML; valid: a mapping with a 'pairs' "
                          "list") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("pairs"), list) or not doc["pairs"]:
        raise OptionError(f"error: pairs file {path}: no 'pairs' list; valid: a mapping with a non-empty "
                          "'pairs' list of {base, tuned, objective, ...}")
    for key in doc:
        if key not in STUDY_KEYS:
            raise _bad(str(path), "key", key, ", ".join(STUDY_KEYS))
    pairs, names = [], set()
    for i, item in enumerate(doc["pairs"]):
        where = f"{path} pairs[{i}]"
        if not isinstance(item, dict):
            raise _bad(where, "entry", item, "a mapping with base, tuned, objective")
        for key in item:
            if key not in PAIR_KEYS:
                raise _bad(where, "key", key, ", ".join(PAIR_KEYS))
        for key in REQUIRED:
            if not isinstance(item.get(key), str) or not item[key].strip():
                raise _bad(where, key, item.get(key), "a non-empty string" + (
                    f" ({' | '.join(OBJECTIVES)})" if key == "objective" else " (hub id, checkpoint dir or model name)"))
        if item["objective"] not in OBJECTIVES:
            raise _bad(where, "objective", item["objective"], " | ".join(OBJECTIVES))
        if item.get("dtype") is not None and item["dtype"] not in DTYPES:
            raise _bad(where, "dtype", item["dtype"], " | ".join(DTYPES))
        name = str(item.get("name") or default_name(item["tuned"]))
        if not NAME.match(name):
            raise _bad(where, "name", name, "letters, digits and _ . + - (a directory name)")
        if name in names:
            raise _bad(where, "name", name, "a name no other pair of the file has (set name: on one of them)")
        names.add(name)
        fields = {k: (str(v) if v is not None else None) for k, v in item.items() if k != "name"}
        for key in ("algorithm", "dataset", "source", "note", "adapter", "group"):
            if fields.get(key) is None:
                fields.pop(key, None)
        fields.setdefault("group", item["base"])
        pairs.append(PairSpec(name=name, index=i, **fields))
    return Study(str(doc.get("name") or path.stem), path, pairs, str(doc.get("description") or ""))
