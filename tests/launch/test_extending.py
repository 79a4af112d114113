"""docs/extending.md, exercised: an adapter, an objective, a task kind, a measurement, a report section and a
claim, each defined here (outside the package) the way the docs show, are found by name, checked before launch,
trained and measured in a real tiny run, reported and judged. Their YAML settings are given as overrides (the
one YAML each would hold)."""

from __future__ import annotations

import json

import pytest

from harness.claims.base import INCONCLUSIVE, Claim, Part, register
from harness.claims.base import REGISTRY as CLAIMS
from harness.data.models import load_model
from harness.data.tasks import KINDS, Example, TaskKind, prompt_id
from harness.data.tasks import register as register_kind
from harness.launch.validate import check
from harness.measure.base import REGISTRY as MEASUREMENTS
from harness.measure.base import measurement, write_artifact
from harness.report.base import REGISTRY as SECTIONS
from harness.report.base import Context, section
from harness.train.adapters import REGISTRY as ADAPTERS
from harness.train.adapters.base import PeftAdapter
from harness.train.adapters.base import register as register_adapter
from harness.train.adapters.lora import lora_config
from harness.train.objectives import OBJECTIVES
from harness.train.objectives import register as register_objective
from tests.conftest import compose

REGISTRIES = (ADAPTERS, OBJECTIVES, KINDS, MEASUREMENTS, SECTIONS, CLAIMS)


@pytest.fixture
def outside():
    """Define the six plug-ins as a user's modules would; remove them afterwards (registries are per process)."""
    for r in REGISTRIES:
        r.discover()  # the built-in ones first
    saved = [dict(r.entries) for r in REGISTRIES]
    try:  # restored even when a registration fails (a leaked plug-in would change other tests' tables)

        @register_adapter("ext_lora")
        class ExtLoRA(PeftAdapter):
            settings = ("r", "alpha", "dropout", "target_modules")

            def peft_config(self, model):
                return lora_config(self.cfg, init_lora_weights="olora")

        @register_objective("ext_sft")
        def ext_sft(model, tokenizer, task, cfg, lr, seed, out_dir, device="cpu", label="ext_sft"):
            from harness.train.objectives import sft

            return sft.train(model, tokenizer, task, cfg, lr=lr, seed=seed, out_dir=out_dir, device=device, label=label)

        @register_kind("ext_times")
        class Times(TaskKind):
            @classmethod
            def examples(cls, cfg):
                out = []
                for a in range(2, 10):
                    for b in range(2, 6):
                        prompt = cfg.prompt_template.format(question=f"What is {a} * {b}?")
                        out.append(Example(prompt_id(cfg.name, prompt), prompt, str(a * b), f" {a * b}"))
                return out

        @measurement("ext_norm", "ext_norm.json", order=60)
        def ext_norm(cfg, job_dir, merged, tok, task, base):
            return write_artifact(job_dir, "ext_norm.json", {"n_params": sum(p.numel() for p in merged.parameters())})

        @section(70, "ext_table", "Table X — parameters measured by an outside measurement")
        def ext_table(ctx: Context) -> str | None:
            values = [json.loads((r.path / "ext_norm.json").read_text())["n_params"] for r in ctx.sweep.runs
                      if (r.path / "ext_norm.json").exists()]
            return f"n_params: {values}" if values else None

        def estimate(data) -> list[Part]:
            n = [json.loads((r.path / "ext_norm.json").read_text())["n_params"] for r in data.sweep.runs]
            return [Part("n_params − 1", estimate=n[0] - 1, lo=n[0] - 1, hi=n[0] - 1, n=len(n), null=0, side="above",
                         runs=[r.name for r in data.sweep.runs])] if n else [Part("n_params", needs="ext_norm.json")]

        register(Claim("EXT1", "the trained model has parameters", "this test", "n_params − 1", "every run", "0",
                       "none", estimate, order=999))
        yield
    finally:
        for r, entries in zip(REGISTRIES, saved):
            r.entries.clear()
            r.entries.update(entries)


@pytest.mark.integration
def test_six_plugins_from_outside_run_end_to_end(outside, tmp_path):
    from harness.claims.table import judge_all
    from harness.report import build_report

    cfg = compose("model=tiny", "logger=none", "eval.enabled=false", "entk.enabled=false",
                  "+adapter.kind=ext_lora", "~adapter.init", "adapter.r=2", "objective.name=ext_sft", "+objective.adapter_lr=sft",
                  "objective.steps=2", "task.kind=ext_times", "task.name=times", "task.n_train=20", "task.n_test=8",
                  "+ext_norm.enabled=true")
    assert check(cfg) == []
    # an unknown setting of the outside adapter is refused like a built-in one's
    assert "unknown setting of adapter 'lora' 'droput'" in check(compose("model=tiny", "+adapter.droput=0.1"))[0]
    assert "'rr'" in check(compose("model=tiny", "+adapter.kind=ext_lora", "~adapter.init", "+adapter.rr=2"))[0]

    job = tmp_path / "sweep" / "adapter=ext_lora,seed=0"
    job.mkdir(parents=True)
    (job / ".hydra").mkdir()
    from omegaconf import OmegaConf

    (job / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    (job / ".hydra" / "overrides.yaml").write_text("- adapter=ext_lora\n- seed=0\n")
    (job / ".hydra" / "hydra.yaml").write_text(OmegaConf.to_yaml({"hydra": {"runtime": {"choices": {
        "adapter": "lora", "objective": "sft"}}}}))
    from harness.core.record import RunRecord, read_run
    from harness.launch.run import train_run

    record = RunRecord(job)
    record.start(cfg)
    train_run(cfg, job, record)  # the body of a job, in-process: the outside plug-ins live in this process
    record.finish("done")
    rec = read_run(job)
    from safetensors.torch import load_file

    delta = load_file(job / "delta.safetensors")
    assert any(float(t.abs().max()) > 0 for t in delta.values())  # the outside adapter and objective trained
    assert rec["parameters"]["trainable"] < rec["parameters"]["total"]  # LoRA factors, not the whole model
    n_params = json.loads((job / "ext_norm.json").read_text())["n_params"]
    assert n_params == sum(p.numel() for p in load_model(rec["base_dir"])[0].parameters())  # the merged model's
    text = build_report(tmp_path / "sweep", wandb_log=False).read_text()
    assert "Table X — parameters measured by an outside measurement" in text and f"n_params: [{n_params}]" in text
    from harness.analysis.sweep import load_sweep

    verdicts = {c.id: r for c, r in judge_all(load_sweep(tmp_path / "sweep"))}
    assert verdicts["EXT1"].verdict == INCONCLUSIVE and "n = 1" in verdicts["EXT1"].reason  # one seed: no interval
    assert verdicts["EXT1"].primary.estimate == n_params - 1
