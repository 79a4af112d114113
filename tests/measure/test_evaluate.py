"""Downstream evaluation through lm-eval: lm-eval scores with the harness scorer (process_results), the task
YAMLs include one packaged template, accuracy on the tiny model equals the scorer's mean over the logged
samples, per-prompt scores and intervals in eval.json, the base evaluated once per base, named tasks loaded
once per run, and the error for lm-eval tasks that cannot load offline."""

from __future__ import annotations

import fnmatch
import json
import shutil
import tomllib

import pytest
import torch
import yaml
from lm_eval.api.model import LM

from harness.core import stats
from harness.data import models
from harness.data.tasks import build_task, extract_answer, score
from harness.measure import evaluate as ev
from tests.conftest import ROOT, compose


class ScriptedLM(LM):
    """An lm-eval model that answers each prompt with a given text: lets a test put exact completions (a boxed
    fraction, a hedge) through lm-eval's own task, filter and metric machinery. It stands in for the language
    model only; what is under test is the scoring path inside lm-eval."""

    def __init__(self, answers: dict[str, str]):
        super().__init__()
        self.answers = answers

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        return [self.answers[r.args[0]] for r in requests]

    def loglikelihood(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError


def _task(tmp_path, rows: list[dict], name: str = "hand", max_gen_toks: int = 6, until=("\n",)):
    jsonl = tmp_path / f"{name}.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    task_dir = tmp_path / "tasks"
    ev.write_task_yaml(task_dir, name, jsonl, max_gen_toks=max_gen_toks, until=until)
    return task_dir


def test_task_yaml_includes_the_packaged_template(tmp_path):
    task_dir = _task(tmp_path, [{"id": "p0", "prompt": "Q", "answer": "1"}], until=("\n", "Q:"))
    spec = yaml.safe_load((task_dir / "hand.yaml").read_text())  # plain YAML: no tags, written by safe_dump
    assert spec["include"] == str(ev.TEMPLATE.resolve()) and ev.TEMPLATE.parent == ROOT / "harness" / "measure"
    assert spec["task"] == "hand" and spec["generation_kwargs"] == {"until": ["\n", "Q:"], "do_sample": False,
                                                                    "max_gen_toks": 6}
    assert "process_results: !function harness.measure.evaluate.process_results" in ev.TEMPLATE.read_text()
    # the template ships with the package (pyproject's package-data), so a non-editable install finds it
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["harness"]
    assert any(fnmatch.fnmatch(str(ev.TEMPLATE.relative_to(ROOT / "harness")), p) for p in patterns)


# completion, gold, score: cases where the harness scorer and a string match of the last number disagree
THROUGH_LM_EVAL = [
    ("\\boxed{\\frac{1}{2}}", "0.5", 1.0),  # math-verify only
    (" 43 or 42", "42", 0.0),  # a hedge
    (" 1,234", "1234", 1.0),
    (" 4,2", "42", 0.0),
    (" 3 + 4 = 7", "7", 1.0),
]


def test_lm_eval_scores_with_the_harness_scorer(tmp_path):
    rows = [{"id": f"p{i}", "prompt": f"Q{i}:", "answer": gold} for i, (_, gold, _) in enumerate(THROUGH_LM_EVAL)]
    task_dir = _task(tmp_path, rows)
    lm = ScriptedLM({r["prompt"]: c for r, (c, _, _) in zip(rows, THROUGH_LM_EVAL)})
    results, samples = ev.evaluate_lm(lm, ev.load_tasks(task_dir, ["hand"]))
    res = results["hand"]
    assert res["metric"] == "score,none" and res["n"] == len(rows)
    assert res["scores"] == {f"p{i}": s for i, (_, _, s) in enumerate(THROUGH_LM_EVAL)}
    assert res["accuracy"] == pytest.approx(3 / 5)
    ci = stats.wilson(3, 5)
    assert res["ci"] == [round(ci.lo, 6), round(ci.hi, 6)]
    assert [s["score"] for s in sorted(samples, key=lambda s: s["doc_id"])] == [s for *_, s in THROUGH_LM_EVAL]
    assert ev.process_results({"answer": "0.5"}, ["\\boxed{\\frac{1}{2}}"]) == {"score": 1.0}


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
def test_tiny_model_accuracy_is_the_scorer_mean(tiny_base, tmp_path, until):
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
    # every other row gets the model's own answer segment as gold (right), the others a number it did not say
    rows = [{"id": f"p{i}", "prompt": p, "answer": extract_answer(c) if i % 2 == 0 and extract_answer(c) else "98765"}
            for i, (p, c) in enumerate(zip(prompts, completions))]
    task_dir = _task(tmp_path, rows, until=until)

    by_hand = {r["id"]: score(c, r["answer"]) for c, r in zip(completions, rows)}
    results, samples = ev.evaluate_model(model, tok, ev.load_tasks(task_dir, ["hand"]), batch_size=3)

    assert 0 < sum(by_hand.values()) < len(rows)  # the check below is not 0 == 0
    assert len(set(completions)) > 4
    assert sorted((s["doc_id"], s["completion"]) for s in samples) == list(enumerate(completions))
    gold = {r["id"]: r["answer"] for r in rows}
    logged = {s["id"]: score(s["completion"], gold[s["id"]]) for s in samples}
    assert results["hand"]["scores"] == logged == by_hand
    assert results["hand"]["accuracy"] == pytest.approx(sum(logged.values()) / len(rows))
    assert results["hand"]["n"] == len(rows)


def test_base_is_evaluated_once_per_base(tiny_base, tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))  # a cache of this test's own
    loads = []
    real_load = models.load_model
    monkeypatch.setattr(models, "load_model", lambda *a, **k: loads.append(a) or real_load(*a, **k))
    overrides = ("model=tiny", "logger=none", "eval.limit=4", "eval.max_gen_toks=4", "task.n_train=4",
                 "task.n_test=4")
    model, tok = real_load(tiny_base)
    model.eval()
    copy = shutil.copytree(tiny_base, tmp_path / "base-copy")  # the same weights at another path
    outs = []
    for sweep, objective, base in [("sweep", "sft", tiny_base), ("sweep", "rlvr", tiny_base),
                                   ("other-sweep", "sft", copy)]:
        cfg = compose(*overrides, f"objective={objective}")
        task = build_task(cfg.task)
        job = tmp_path / sweep / f"objective={objective}"
        job.mkdir(parents=True)
        outs.append(ev.evaluate_run(cfg, job, model, tok, task, base))

    assert len(loads) == 1  # the base was loaded (and evaluated) by the first job only, keyed by its weights
    assert len(list((tmp_path / "cache" / "eval-base").glob("*.json"))) == 1
    assert outs[0]["seconds"]["base"] > 0 and outs[1]["seconds"]["base"] == outs[2]["seconds"]["base"] == 0
    ids = [e.id for e in build_task(compose(*overrides).task).test[:4]]
    for out, job in zip(outs, ["sweep/objective=sft", "sweep/objective=rlvr", "other-sweep/objective=sft"]):
        assert json.loads((tmp_path / job / "eval.json").read_text()) == out
        assert set(out["tasks"]) == {"id", "ood_subtraction", "ood_multiplication"}
        assert out["tasks"]["id"]["split"] == "id" and out["tasks"]["ood_subtraction"]["split"] == "ood"
        assert list(out["tasks"]["id"]["scores"]) == ids  # per-prompt scores keyed by prompt id
        for t in out["tasks"].values():
            assert t["n"] == 4 and t["stderr"] is not None and len(t["scores"]) == 4
            assert set(t["scores"].values()) <= {0.0, 1.0}
            k = int(sum(t["scores"].values()))
            assert t["accuracy"] == pytest.approx(k / 4)
            assert t["ci"] == [round(stats.wilson(k, 4).lo, 6), round(stats.wilson(k, 4).hi, 6)]
            # the merged model here is the base itself: no change, on every prompt
            assert t["accuracy"] == t["base_accuracy"] and t["delta"] == 0 and t["base_ci"] == t["ci"]
            assert t["base_scores"] == t["scores"]
            assert t["delta_ci"] == [0.0, 0.0] and t["delta_p"] == 1.0 and t["mcnemar_p"] == 1.0


def test_compare_pairs_prompts_by_id():
    run = {"a": 1.0, "b": 1.0, "c": 1.0, "d": 1.0, "e": 1.0, "f": 1.0, "only-run": 0.0}
    base = {"f": 0.0, "e": 0.0, "d": 0.0, "c": 0.0, "b": 0.0, "a": 0.0, "only-base": 1.0}
    out = ev.compare(run, base)
    # six prompts shared, all right in the run only: McNemar p = 2 / 2^6; every resample differs by 1
    assert out["mcnemar_p"] == pytest.approx(2 / 64, abs=1e-6) and out["delta_ci"] == [1.0, 1.0]
    assert ev.compare({"a": 1.0}, {"b": 0.0}) == {}


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


def test_eval_summary_and_the_wandb_summary_of_a_real_offline_run(tmp_path):
    summary = ev._summary({"id": {"accuracy": 0.5, "stderr": 0.1, "base_accuracy": 0.25, "delta": 0.25, "n": 8,
                                  "ci": [0.2, 0.8], "delta_ci": [-0.1, 0.6], "mcnemar_p": 0.4, "scores": {"a": 1}}})
    assert summary == {"eval/id/accuracy": 0.5, "eval/id/stderr": 0.1, "eval/id/base_accuracy": 0.25,
                       "eval/id/delta": 0.25, "eval/id/n": 8, "eval/id/mcnemar_p": 0.4,
                       "eval/id/ci_lo": 0.2, "eval/id/ci_hi": 0.8, "eval/id/delta_ci_lo": -0.1,
                       "eval/id/delta_ci_hi": 0.6}
    import wandb

    from harness.measure.base import wandb_summary

    run = wandb.init(mode="offline", dir=str(tmp_path), project="harness-test")
    try:
        wandb_summary({**summary, "nan": float("nan"), "text": "x"})  # numbers only, NaN left out
        assert {k: run.summary[k] for k in summary} == summary
        assert "nan" not in run.summary.keys() and "text" not in run.summary.keys()
    finally:
        run.finish()


def test_named_lm_eval_task_runs_with_its_own_filter_and_metric_loaded_once(tiny_base, tmp_path, monkeypatch):
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
    tm = TaskManager(include_path=str(index), include_defaults=False)
    loads = []
    real = tm.load
    monkeypatch.setattr(tm, "load", lambda names: loads.append(list(names)) or real(names))  # counts real loads
    monkeypatch.setattr(ev, "_builtin_tasks", lambda: tm)
    monkeypatch.setattr(ev, "_NAMED", {})
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))  # the base is evaluated here, not read
    cfg = compose("model=tiny", "logger=none", "eval.limit=2", "eval.max_gen_toks=4", "eval.in_distribution=false",
                  "~eval.ood.multiplication", "eval.tasks=[named_demo]")
    model, tok = models.load_model(tiny_base)
    model.eval()
    job = tmp_path / "sweep" / "job"
    job.mkdir(parents=True)
    ev.check_named_tasks(cfg)  # what run.py does before training
    out = ev.evaluate_run(cfg, job, model, tok, build_task(cfg.task), tiny_base)
    assert out["seconds"]["base"] > 0  # the base and the run were both evaluated ...
    assert loads == [["named_demo"]]  # ... on one load of the named task, the check before training included
    assert set(out["tasks"]) == {"ood_subtraction", "named_demo"}
    named = out["tasks"]["named_demo"]
    assert named["split"] == "lm_eval" and named["metric"] == "exact_match,strict-match" and named["n"] == 2
    assert named["delta"] == 0 and set(named["scores"]) == {"named_demo/0", "named_demo/1"}
