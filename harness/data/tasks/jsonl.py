"""Task kind ``jsonl``: a user's file, one JSON object per line with ``prompt``, ``answer`` and optional
``solution`` (SFT trains on it) and ``id``. A bad file is reported with its path and line number."""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from harness.core.registry import BadValue
from harness.data.tasks import Example, TaskKind, prompt_id, register

VALID = "a JSONL file, one object per line with prompt and answer"


def read_rows(path_value: str | None, key: str = "task.path") -> list[dict]:
    """The objects of a JSONL file (blank lines skipped); :class:`BadValue` naming file and line otherwise."""
    if not path_value or path_value == "???":
        raise BadValue(key, path_value, VALID)
    path = Path(str(path_value)).expanduser()
    if not path.is_file():
        raise BadValue(key, path_value, f"an existing file ({VALID}): {path} does not exist")
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BadValue(key, path_value, f"{VALID}: {path}:{n}: not JSON ({exc.msg}, column {exc.colno})") from None
        if not isinstance(row, dict) or {"prompt", "answer"} - row.keys():
            raise BadValue(key, path_value, f"{VALID}: {path}:{n} lacks prompt or answer")
        rows.append(row)
    return rows


@register("jsonl")
class JsonlTask(TaskKind):
    @classmethod
    def examples(cls, cfg: DictConfig) -> list[Example]:
        out = []
        for row in read_rows(cfg.path):
            prompt = cfg.prompt_template.format(question=row["prompt"])
            answer = str(row["answer"])
            target = " " + str(row.get("solution") or answer)
            out.append(Example(str(row.get("id") or prompt_id(cfg.name, prompt)), prompt, answer, target))
        return out

    @classmethod
    def check(cls, cfg: DictConfig, key: str = "task") -> None:
        path = None if OmegaConf.is_missing(cfg, "path") else cfg.get("path")
        rows = read_rows(path, f"{key}.path")
        need = cfg.get("n_train", 0) + cfg.get("n_test", 0)
        if len(rows) < need:
            raise BadValue(f"{key}.path", cfg.path,
                           f"{VALID}, at least n_train + n_test = {need} rows (the file has {len(rows)})")
