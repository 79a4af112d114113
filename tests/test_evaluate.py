"""Downstream evaluation through lm-eval: the answer filter, a hand-made JSONL task on the tiny model, the base
evaluated once per sweep, the sweep table, and the error for lm-eval tasks that cannot load offline."""

from __future__ import annotations

import json

import pytest
import torch

from harness import evaluate as ev
from harness import models
from harness.tasks import build_task, extract_answer, score
from harness.tasks.scoring import NUMBER
from tests.conftest import compose

# completion, gold, what the filter must return
TABLE = [
    (" 42", "42", "42"),
    (" 42\nCalculate 1 + 1.", "42", "42"),
    ("\n\n 8", "8", "8"),  # the first non-empty line
    (" The answer is 1,234.", "1234", "1234"),
    (" 3 + 4 = 7", "7", "7"),  # the last number of the answer line
    (" 3475 + 5", "9262", "5"),
    (" -7", "-7", "-7"),
    (" −7", "-7", "-7"),  # unicode minus
    (" +5", "5", "5"),
    (" 12.0", "12", "12"),
    (" 0.50", ".5", "0.5"),
    (" -0", "0", "0"),
    (" 100", "1E+2", "100"),
    ("work\n#### 56", "56", "56"),
    ("so \\boxed{17} and 18", "17", "17"),
    (" 17", "71", "17"),
    ("", "3", ev.INVALID),
    (" no digits here", "3", ev.INVALID),
    (" yes", "yes", "yes"),  # non-numeric gold: the stripped answer line
    (" no", "yes", "no"),
]


@pytest.mark.parametrize("completion,gold,expected", TABLE)
def test_answer_filter_extracts_the_final_answer(completion, gold, expected):
    got = ev.final_answer(completion, gold)
    assert got == expected
    # exact_match on the filtered answer is the harness's own scorer
    assert (got == ev.gold_target(gold)) == bool(score(completion, gold))


def test_answer_filter_keeps_lm_eval_shapes():
    resps = [[" 4", " 5"], [" x"]]
    docs = [{"answer": "4"}, {"answer": 9}]
    assert ev.answer_filter(resps, docs) == [["4", "5"], [ev.INVALID]]
    assert ev.doc_to_target({"answer": 9}) == "9"


def _greedy(model, tok, prompt: str, max_new: int, until=("\n",)) -> str:
    """The model's own greedy completion, cut like lm-eval cuts it: at eos or a stop string."""
    enc = tok(prompt, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=max_new, do_sample=False, pad_token_id=tok.pad_token_id)
    text = tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=False)
    text = text.split(tok.eos_token)[0]
    for stop in until:
        text = text.split(stop)[0]
    return text


@pytest.mark.parametrize("until", [("\n",), ()], ids=["stop-at-newline", "no-stop-string"])
def test_hand_made_jsonl_matches_hand_computed_accuracy(tiny_base, tmp_path, until):
    model, tok = models.load_model(tiny_base)
    model.eval()
    # Large random weights: greedy outputs then differ from prompt to prompt and hold digits now and then.
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" not in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    prompts = [f"Calculate {a} + {b}.\nAnswer:" for a, b in [(1, 2), (3, 4), (12, 9), (7, 70), (5, 5), (40, 2),
                                                             (8, 1), (66, 33)]]
    completions = [_greedy(model, tok, p, 6, until) for p in prompts]
    rows = []
    for i, (p, c) in enumerate(zip(prompts, completions)):
        segment = extract_answer(c)
        numbers = NUMBER.findall(segment)
        # every other row gets the model's own answer as gold (right), the others a number it did not say
        gold = (numbers[-1] if numbers else segment) if i % 2 == 0 and segment else "98765"
        rows.append({"prompt": p, "answer": gold})
    jsonl = tmp_path / "hand.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    task_dir = tmp_path / "tasks"
    ev.write_task_yaml(task_dir, "hand", jsonl, max_gen_toks=6, until=until)

    by_hand = sum(score(c, r["answer"]) for c, r in zip(completions, rows)) / len(rows)
    results, samples = ev.evaluate_model(model, tok, task_dir, ["hand"], batch_size=3)

    assert 0 < by_hand < 1  # the check below is not 0 == 0
    assert len(set(completions)) > 4 and any(NUMBER.search(c) for c in completions)
    assert results["hand"]["accuracy"] == pytest.approx(by_hand)
    assert results["hand"]["n"] == len(rows)
    assert results["hand"]["metric"] == "exact_match,final_answer"
    assert sorted((s["doc_id"], s["completion"]) for s in samples) == list(enumerate(completions))


def test_base_is_evaluated_once_per_sweep(tiny_base, tmp_path, monkeypatch):
    loads = []
    real_load = models.load_model
    monkeypatch.setattr(models, "load_model", lambda *a, **k: loads.append(a) or real_load(*a, **k))
    overrides = ("model=tiny", "logger=none", "eval.limit=4", "eval.max_gen_toks=4", "task.n_train=4",
                 "task.n_test=4")
    sweep = tmp_path / "sweep"
    model, tok = real_load(tiny_base)
    model.eval()
    outs = []
    for objective in ("sft", "rlvr"):
        cfg = compose(*overrides, f"objective={objective}")
        task = build_task(cfg.task)
        job = sweep / f"objective={objective}"
        job.mkdir(parents=True)
        outs.append(ev.evaluate_run(cfg, job, model, tok, task, tiny_base))

    assert len(loads) == 1  # the base was loaded (and evaluated) by the first job only
    assert len(list((sweep / ev.TASKS_DIR).glob("base-*.json"))) == 1
    assert outs[0]["seconds"]["base"] > 0 and outs[1]["seconds"]["base"] == 0
    for objective, out in zip(("sft", "rlvr"), outs):
        written = json.loads((sweep / f"objective={objective}" / "eval.json").read_text())
        assert written == out
        assert set(out["tasks"]) == {"id", "ood_subtraction", "ood_multiplication"}
        assert out["tasks"]["id"]["split"] == "id" and out["tasks"]["ood_subtraction"]["split"] == "ood"
        for t in out["tasks"].values():
            assert t["n"] == 4 and t["stderr"] is not None
            # the merged model here is the base itself: no change
            assert t["accuracy"] == t["base_accuracy"] and t["delta"] == 0



def test_named_task_that_cannot_load_offline_says_why(tmp_path):
    from lm_eval.tasks import TaskManager

    # a hub dataset, as in lm-eval's built-in tasks; HF_DATASETS_OFFLINE=1 (conftest) forbids fetching it
    (tmp_path / "remote.yaml").write_text(
        "task: remote_task\ndataset_path: harness-test/not-on-this-machine\ntest_split: test\n"
        "output_type: generate_until\ndoc_to_text: '{{q}}'\ndoc_to_target: '{{a}}'\n"
        "metric_list:\n  - metric: exact_match\n")
    tm = TaskManager(include_path=str(tmp_path), include_defaults=False)
    with pytest.raises(ev.EvalTaskError, match=r"'remote_task'.*fetched offline.*HF_DATASETS_OFFLINE=0"):
        ev.load_named_tasks(["remote_task"], task_manager=tm)
    with pytest.raises(ev.EvalTaskError, match=r"no task 'remote_tsak'; did you mean remote_task"):
        ev.load_named_tasks(["remote_tsak"], task_manager=tm)


def test_default_config_has_id_and_two_ood_tasks():
    cfg = compose("model=tiny")
    assert cfg.eval.enabled
    assert len(cfg.eval.ood) >= 2
    for name, entry in cfg.eval.ood.items():
        ood = build_task(ev._ood_task_cfg(name, entry))
        assert len(ood.test) == entry.n_test and not ood.train
        assert all(e.prompt.endswith(cfg.task.prompt_template.split("{question}")[-1]) for e in ood.test)



def test_wandb_summary_when_a_run_is_active(monkeypatch):
    import wandb

    class FakeRun:
        summary: dict = {}

    monkeypatch.setattr(wandb, "run", FakeRun())
    ev._wandb_summary({"id": {"accuracy": 0.5, "stderr": 0.1, "base_accuracy": 0.25, "delta": 0.25, "n": 8}})
    assert FakeRun.summary == {"eval/id/accuracy": 0.5, "eval/id/stderr": 0.1, "eval/id/base_accuracy": 0.25,
                               "eval/id/delta": 0.25, "eval/id/n": 8}


def test_named_lm_eval_task_runs_with_its_own_filter_and_metric(tiny_base, tmp_path, monkeypatch):
    from lm_eval.tasks import TaskManager

    # stands in for lm-eval's built-in index (no network here): a task with its own regex filter
    index = tmp_path / "index"
    index.mkdir()
    (index / "data.jsonl").write_text("".join(json.dumps({"q": f"{i} + 1 =", "a": str(i + 1)}) + "\n"
                                              for i in range(3)))
    (index / "named.yaml").write_text(
        f"task: named_demo\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {index / 'data.jsonl'}\n"
        f"  cache_dir: {tmp_path / 'hf_cache'}\n"
        "test_split: test\noutput_type: generate_until\ndoc_to_text: '{{q}}'\ndoc_to_target: '{{a}}'\n"
        "generation_kwargs:\n  until: ['\\n']\n  max_gen_toks: 4\n  do_sample: false\n"
        "filter_list:\n  - name: strict-match\n    filter:\n      - function: regex\n"
        "        regex_pattern: '(\\d+)'\n      - function: take_first\n"
        "metric_list:\n  - metric: exact_match\n    aggregation: mean\n    higher_is_better: true\n")
    monkeypatch.setattr(ev, "_builtin_tasks", lambda: TaskManager(include_path=str(index), include_defaults=False))
    cfg = compose("model=tiny", "logger=none", "eval.limit=2", "eval.max_gen_toks=4", "eval.in_distribution=false",
                  "~eval.ood.multiplication", "eval.tasks=[named_demo]")
    model, tok = models.load_model(tiny_base)
    model.eval()
    job = tmp_path / "sweep" / "job"
    job.mkdir(parents=True)
    out = ev.evaluate_run(cfg, job, model, tok, build_task(cfg.task), tiny_base)
    assert set(out["tasks"]) == {"ood_subtraction", "named_demo"}
    named = out["tasks"]["named_demo"]
    assert named["split"] == "lm_eval" and named["metric"] == "exact_match,strict-match" and named["n"] == 2
    assert named["delta"] == 0
