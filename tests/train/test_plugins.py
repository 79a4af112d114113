"""Plug-ins by name: every file in conf/{objective,task,model,logger} composes, validates and runs something
real on the tiny model; registries give the one-line did-you-mean error; a plug-in registered from outside the
harness is found by name like a built-in one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.core.registry import Registry, UnknownName
from harness.launch.validate import check
from tests.conftest import CONF, compose

QUIET = ["logger=none", "eval.enabled=false", "entk.enabled=false"]


def yamls(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(CONF) / group).glob("*.yaml"))


def one_step(cfg, job_dir: Path) -> dict:
    """``harness.launch.run.train_run`` on ``cfg`` (the body of a job, in-process); returns run.json."""
    from harness.core.record import RunRecord, read_run
    from harness.launch.run import train_run

    rec = RunRecord(job_dir)
    rec.start(cfg)
    train_run(cfg, job_dir, rec)
    assert (job_dir / "delta.safetensors").exists()
    return read_run(job_dir)


@pytest.fixture(scope="module")
def prompts_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("jsonl") / "sums.jsonl"
    rows = [{"prompt": f"{a}+{b}=", "answer": str(a + b), "solution": f"{a + b} #### {a + b}"}
            for a in range(4) for b in range(3)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("name", yamls("objective"))
def test_every_objective_trains_one_step(name, tmp_path):
    teacher = ["objective.teacher=model:tiny"] if name == "gkd" else []  # distillation needs a teacher: the base
    cfg = compose("model=tiny", f"objective={name}", "objective.steps=1", *teacher, *QUIET)
    assert check(cfg) == []
    run = one_step(cfg, tmp_path)
    assert run["steps"] == 1
    assert [json.loads(line)["step"] for line in (tmp_path / "train_log.jsonl").read_text().splitlines()] == [1]
    if name == "sft":  # a reward objective on the untrained tiny model may see reward 0 everywhere: no update
        assert run["delta_norm"] > 0


@pytest.mark.parametrize("name", yamls("task"))
def test_every_task_builds_and_trains_one_step(name, tmp_path, prompts_file):
    from harness.data.tasks import build_task

    extra = [f"task.path={prompts_file}", "task.n_train=8", "task.n_test=4"] if name == "jsonl" else []
    cfg = compose("model=tiny", f"task={name}", *extra, "objective.steps=1", *QUIET)
    assert check(cfg) == []
    task = build_task(cfg.task)
    assert len(task.train) == cfg.task.n_train and len(task.test) == cfg.task.n_test
    assert not {e.id for e in task.train} & {e.id for e in task.test}
    assert one_step(cfg, tmp_path)["steps"] == 1


def test_jsonl_task_reads_the_file(prompts_file):
    from harness.data.tasks import build_task

    task = build_task(compose("task=jsonl", f"task.path={prompts_file}", "task.n_train=8", "task.n_test=4").task)
    ex = next(e for e in task.train + task.test if e.prompt.startswith("3+2="))
    assert ex.answer == "5" and ex.target == " 5 #### 5" and ex.prompt == "3+2=\nAnswer:"


@pytest.mark.parametrize("name", yamls("model"))
def test_every_model_source(name, tmp_path, tiny_base):
    from harness.data.models import source_dir
    from harness.data.sources import SOURCES
    from harness.train.warmup import resolve_base

    extra = {"hf": [f"model.name_or_path={tiny_base}", "model.dtype=float32", "model.device=cpu"]}.get(name, [])
    cfg = compose(f"model={name}", *extra, "objective.steps=1", *QUIET)
    assert check(cfg) == []
    assert cfg.model.source in SOURCES.names()
    if cfg.model.source == "smollm2_gguf":
        # resolving converts the 135M GGUF (~20 s, 540 MB) and warms it up (minutes): check the packaged file
        # the source converts
        from harness.data.sources.smollm2_gguf import smollm2_gguf_path

        assert smollm2_gguf_path().stat().st_size > 50e6
        return
    assert Path(source_dir(cfg.model)).is_dir() and resolve_base(cfg.model) == source_dir(cfg.model)
    assert one_step(cfg, tmp_path)["base_dir"] == str(source_dir(cfg.model))


@pytest.mark.parametrize("name", yamls("logger"))
def test_every_logger_validates(name):
    assert check(compose("model=tiny", f"logger={name}")) == []


@pytest.mark.parametrize("registry,near,expect", [
    ("harness.train.objectives.OBJECTIVES", "sfft", "did you mean 'sft'"),
    ("harness.data.tasks.KINDS", "json", "did you mean 'jsonl'"),
    ("harness.data.sources.SOURCES", "tinyy", "did you mean 'tiny'"),
])
def test_unknown_name_is_one_line_with_did_you_mean(registry, near, expect):
    import importlib

    module, attr = registry.rsplit(".", 1)
    reg: Registry = getattr(importlib.import_module(module), attr)
    with pytest.raises(UnknownName) as err:
        reg.get(near)
    msg = str(err.value)
    assert "\n" not in msg and expect in msg and "valid: " in msg
    assert msg.endswith(", ".join(reg.names()))


def test_unknown_plugin_name_in_a_yaml_is_caught_before_launch():
    # a conf file whose objective / task kind / source no module registers: one line, before anything loads
    from harness.train.objectives import available

    cfg = compose("model=tiny", "objective.name=ppo", "objective.lr=1e-4")
    assert check(cfg) == [f"error: unknown objective 'ppo'; valid: {', '.join(available())}"]
    assert "unknown task kind 'csv'" in check(compose("model=tiny", "task.kind=csv"))[0]
    assert "unknown model source 'gguf'" in check(compose("model=tiny", "model.source=gguf"))[0]


def test_a_registered_task_kind_is_used_by_name():
    """What a new plug-in module does (decorate), seen from build_task: the kind is found by name."""
    from harness.data.tasks import KINDS, Example, TaskKind, build_task, register

    @register("countdown_test")
    class Countdown(TaskKind):
        @classmethod
        def examples(cls, cfg):
            return [Example(f"c{i}", f"{i}-1=", str(i - 1), f" {i - 1}") for i in range(cfg.n_train + cfg.n_test)]

    try:
        cfg = compose("model=tiny", "task.kind=countdown_test", "task.n_train=3", "task.n_test=2")
        assert check(cfg) == []
        task = build_task(cfg.task)
        assert len(task.train) == 3 and len(task.test) == 2
        assert sorted(e.answer for e in task.train + task.test) == ["-1", "0", "1", "2", "3"]
    finally:
        del KINDS.entries["countdown_test"]


def test_format_warmup_is_trained_once_and_cached():
    """The warm-up stage (harness.train.warmup, resolve_base): 2 SFT steps on its own task,
    cached by its settings; the second resolve reuses the checkpoint."""
    from omegaconf import OmegaConf, open_dict
    from safetensors.torch import load_file

    from harness.core.store import read_json
    from harness.data.models import source_dir
    from harness.train.warmup import resolve_base

    smol = OmegaConf.load(Path(CONF) / "model" / "smollm2-135m.yaml").warmup
    cfg = compose("model=tiny")
    with open_dict(cfg):
        cfg.model.warmup = smol
        cfg.model.warmup.steps, cfg.model.warmup.batch_size, cfg.model.warmup.lr = 2, 4, 1e-3
        cfg.model.warmup.task.n_train = 8
    assert check(cfg) == []
    warm = Path(resolve_base(cfg.model))
    src = Path(source_dir(cfg.model))
    assert warm != src and warm.name.startswith(src.name + "-warm-")
    assert read_json(warm / "warmup.json")["settings"]["steps"] == 2
    stamp = (warm / "model.safetensors").stat().st_mtime_ns
    before, after = load_file(str(src / "model.safetensors")), load_file(str(warm / "model.safetensors"))
    assert any(not before[k].equal(after[k]) for k in before)  # trained
    assert Path(resolve_base(cfg.model)) == warm and (warm / "model.safetensors").stat().st_mtime_ns == stamp
