"""On-policy distillation (``objective=gkd``, TRL's GKD trainer) on the tiny model: a cold student distilled from
a warm teacher (the digits format warm-up of tests.conftest) moves toward it (the teacher-student KL on fixed
sequences falls), and ``objective.teacher`` accepts a run dir, a checkpoint dir or ``model:<name>`` and refuses
anything else in one line naming the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from harness.core.registry import BadValue
from harness.launch.validate import check
from harness.train.objectives.gkd import teacher_config
from tests.conftest import compose, warm_digits, write_digits

pytestmark = pytest.mark.integration

QUIET = ["logger=none", "eval.enabled=false", "entk.enabled=false"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("gkd-data") / "digits.jsonl"
    write_digits(path, 10)
    return path


@pytest.fixture(scope="module")
def teacher_dir(data) -> Path:
    """The warm tiny model's checkpoint (answers a digit ~40 % of the time; the cold one almost never)."""
    from harness.train.warmup import resolve_base

    return Path(resolve_base(compose("model=tiny", *warm_digits(10, data)).model))


@torch.no_grad()
def kl_teacher_student(teacher, student, seqs: torch.Tensor, start: int) -> float:
    """Mean KL(teacher ‖ student) of the next-token distributions over positions >= ``start``."""
    t = torch.log_softmax(teacher(seqs).logits[:, start - 1 : -1], -1)
    s = torch.log_softmax(student(seqs).logits[:, start - 1 : -1], -1)
    return float((t.exp() * (t - s)).sum(-1).mean())


def test_a_student_distilled_on_policy_moves_toward_its_teacher(data, teacher_dir, tmp_path):
    from harness.data.models import load_base, load_model
    from harness.data.tasks import build_task
    from harness.train.adapters import build_adapter
    from harness.train.objectives import train

    cfg = compose("model=tiny", "adapter=full", "objective=gkd", f"objective.teacher={teacher_dir}", "task=jsonl",
                  f"task.path={data}", "task.n_train=8", "task.n_test=2", "objective.steps=12",
                  "objective.max_completion_length=4", *QUIET)
    assert check(cfg) == []
    student, tok = load_base(cfg.model, _cold(cfg))
    teacher, _ = load_model(teacher_dir)
    task = build_task(cfg.task)
    # fixed sequences: each train prompt with the teacher's greedy 3-token answer
    tok.padding_side = "left"
    enc = tok([e.prompt for e in task.train], return_tensors="pt", padding=True)
    seqs = teacher.generate(**enc, do_sample=False, max_new_tokens=3, pad_token_id=tok.pad_token_id)
    start = enc["input_ids"].shape[1]
    before = kl_teacher_student(teacher, student.eval(), seqs, start)
    trainer = train("gkd", model=build_adapter(cfg.adapter, seed=0).prepare(student), tokenizer=tok, task=task,
                    cfg=cfg.objective, lr=1e-2, seed=0, out_dir=tmp_path, device="cpu", label="gkd")
    assert type(trainer).__name__ == "GKDTrainer" and trainer.state.global_step == 12
    log = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert len(log) == 12 and all(row["loss"] >= 0 for row in log)
    after = kl_teacher_student(teacher, student.eval(), seqs, start)
    assert after < 0.5 * before, (before, after)


def _cold(cfg):
    from harness.train.warmup import resolve_base

    return resolve_base(cfg.model)


def test_the_teacher_may_be_a_run_dir_a_checkpoint_or_a_model_config(teacher_dir, tmp_path):
    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    for f in teacher_dir.iterdir():
        (run / "model" / f.name).write_bytes(f.read_bytes())
    (run / "run.json").write_text("{}")
    assert teacher_config(str(run)).name_or_path == str(run / "model")
    assert teacher_config(str(teacher_dir)).name_or_path == str(teacher_dir)
    assert teacher_config("model:tiny").source == "tiny"


@pytest.mark.parametrize(("spec", "says"), [
    ("model:tinyy", "model:<name> with a name of conf/model"),
    ("org/not-cached", "HF_HUB_OFFLINE=0 downloads it"),
    ("./no/such/dir", "does not exist"),
])
def test_a_bad_teacher_is_one_line_naming_the_key(spec, says):
    with pytest.raises(BadValue) as exc:
        teacher_config(spec)
    assert str(exc.value).startswith(f"bad objective.teacher {spec!r}; valid: ") and says in str(exc.value)


def test_a_run_dir_without_a_saved_model_says_how_to_save_it(tmp_path):
    (tmp_path / "run.json").write_text("{}")
    with pytest.raises(BadValue, match="save_model=true"):
        teacher_config(str(tmp_path))
    (line,) = check(compose("model=tiny", "objective=gkd", f"objective.teacher={tmp_path}", *QUIET))
    assert line.startswith("error: bad objective.teacher") and "save_model=true" in line
