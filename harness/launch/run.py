"""Hydra entry point: one training run, or a sweep with ``-m``.

    python -m harness.run adapter=lora objective=rlvr
    python -m harness.run -m sweeps=demo

Each job writes its artifacts into its Hydra job directory (docs/usage.md, "Run artifacts"): ``run.json``,
``train_log.jsonl``, ``delta.safetensors`` and, when enabled, ``eval.json`` and ``prompts.csv``.
A job whose ``run.json`` says ``done`` is skipped, so launching a killed sweep again resumes it.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from pathlib import Path

# Offline by default: models and data come from packages or are generated (set these before HF imports).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import hydra  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from harness import CONF_DIR as PACKAGE_CONF  # noqa: E402
from harness.core import dist  # noqa: E402
from harness.core.config import block  # noqa: E402
from harness.core.overrides import job_dir_name  # noqa: E402
from harness.core.record import RunRecord, changed_settings, settings_of  # noqa: E402
from harness.data import sampling  # noqa: E402
from harness.launch.cli import validate_argv  # noqa: E402
from harness.measure.base import run_measurements  # noqa: E402

CONF_DIR = str(PACKAGE_CONF)
# Reasons of the runs of this process that failed: a single run (no -m) that failed exits non-zero.
FAILED: list[str] = []
# Sweep job directory names (conf/config.yaml hydra.sweep.subdir). Registered on import, so that launchers
# which run jobs in other processes (submitit) resolve it too.
OmegaConf.register_new_resolver("harness_job_dir", lambda items: job_dir_name(list(items)), replace=True)


def visible_gpus() -> int:
    """The GPUs this process can see (``hydra/launcher=local`` hands them to its jobs instead of hiding them)."""
    import torch

    return torch.cuda.device_count()


OmegaConf.register_new_resolver("harness_gpus", visible_gpus, replace=True)


def train_run(cfg: DictConfig, job_dir: Path, rec: RunRecord) -> None:
    """The body of one run: base -> adapter -> objective -> merged delta -> evaluation.

    On N processes every rank runs this: caches are built by the main process first (the others then load
    them), every rank trains, and the main process alone computes ΔW and the measurements and writes.
    """
    import torch

    from harness.data import models
    from harness.data.tasks import build_task
    from harness.train.adapters import analyzed_weights, build_adapter
    from harness.train.objectives import train
    from harness.train.objectives.common import run_callbacks
    from harness.train.trained import describe, final_model, full_tensors
    from harness.train.warmup import resolve_base

    fault_point(cfg, "start")
    if cfg.get("eval") and cfg.eval.get("enabled", False) and dist.is_main():
        from harness.measure.evaluate import check_named_tasks

        check_named_tasks(cfg)  # a bad eval.tasks entry fails now, not after training
    with rec.stage("base"), dist.main_first("base"):
        base = resolve_base(cfg.model)
    rec.update(base_dir=str(base))
    task = build_task(cfg.task)
    if OmegaConf.select(cfg, "retrain.from", default=None) is not None:  # U4: a first study's unlearnable prompts
        from harness.train.retrain import restrict

        task, info = restrict(cfg.retrain, task)
        rec.update(retrain=info)
        print(f"[harness] retrain: {info['kept']} training prompts ({'/'.join(info['classes'])} in "
              f"{info['seeds']} of {len(info['runs'])} runs of {info['from']})", flush=True)
    device = models.device_for(cfg.model)
    if cfg.get("prompt_filter") and cfg.prompt_filter.get("enabled", False):
        from harness.train.prompt_filter import filter_task

        with rec.stage("prompt_filter"), dist.main_first("prompt_filter"), sampling.engine(engine_of(cfg)):
            task, info = filter_task(cfg, task, base, device)
        rec.update(prompt_filter=info)
    torch.manual_seed(cfg.seed)
    fsdp = bool(OmegaConf.select(cfg, "dist.fsdp", default=False)) and dist.active()
    model, tok = models.load_base(cfg.model, base, device, fsdp=fsdp)
    names = analyzed_weights(model.state_dict(), cfg.get("analyze_embeddings", False))
    original = full_tensors(model.state_dict(), names) or {}  # W0 on the main process's CPU, for ΔW

    obj = cfg.objective
    # Seeds are set before the adapter is built: TRL seeds only after get_peft_model.
    adapter = build_adapter(cfg.adapter, seed=cfg.seed)
    trained = adapter.prepare(model)
    rec.update(parameters=adapter.parameter_counts(trained))
    if original and not fsdp:  # on the main process, which holds W0 (FSDP's shards are not checked)
        adapter.check_identity(trained, original, names)
    # A new objective may take another objective's default lr from the adapter (objective.adapter_lr).
    lr = float(obj.lr) if obj.get("lr") is not None else adapter.learning_rate(obj.get("adapter_lr") or obj.name)
    rec.update(lr=lr)
    label = f"{cfg.adapter.name}/{obj.name}/seed{cfg.seed}"
    from harness.train.trajectory import trajectory_callbacks

    recorders = trajectory_callbacks(cfg, adapter, original, names, job_dir)  # none when trajectory.every = 0
    with rec.stage("train"), run_callbacks(*fault_callbacks(cfg), *recorders):
        trainer = train(obj.name, model=trained, tokenizer=tok, task=task, cfg=obj, lr=lr, seed=cfg.seed,
                        out_dir=job_dir, device=device, label=label)
    rec.update(steps=trainer.state.global_step, distributed=describe(trainer, obj))
    # The trained model whole on the main process (gathered from the shards under FSDP / ZeRO-3), or None.
    trained, adapter = final_model(trainer, trained, adapter, cfg, base)
    del trainer
    if trained is not None and str(next(trained.parameters()).device) != device:  # rebuilt on the CPU
        from harness.train.objectives.common import free_memory

        free_memory()
        trained.to(device)
    with dist.main_only("measure") as mine:
        if mine:
            measure_run(cfg, job_dir, rec, trained, adapter, original, names, tok, task, base)
    fault_point(cfg, "end")


def measure_run(cfg: DictConfig, job_dir: Path, rec: RunRecord, trained, adapter, original, names, tok, task,
                base) -> None:
    """On the main process: ΔW (``delta.safetensors``), the optional checkpoint, and the measurements."""
    from safetensors.torch import save_file

    from harness.data import models

    with rec.stage("delta"):
        merged = adapter.merged(trained)
        # exact from the factors for LoRA-family layers, the merged difference otherwise (adapters/base.py)
        exact = adapter.delta(trained, original, names, merged=merged)
        delta = exact.weights
        rec.update(**exact.info())
        store = models.torch_dtype(cfg.get("store_dtype", "float32"))
        save_file({k: v.to(store).contiguous() for k, v in delta.items()}, str(job_dir / "delta.safetensors"),
                  metadata={"base_dir": str(base), "adapter": cfg.adapter.name, "objective": cfg.objective.name,
                            "delta_method": exact.info()["delta_method"]})
    merged.eval()
    sampling.remember(trained, None)  # trained weights are not the checkpoint it was loaded from
    sampling.remember(merged, None)
    engine = engine_of(cfg)
    if cfg.get("save_model", False) or engine == "vllm":  # a checkpoint (`harness.launch.analyze base=... tuned=...`; vLLM)
        models.save_checkpoint(merged, tok, job_dir / "model")
        sampling.remember(merged, job_dir / "model")
    rec.update(delta_norm=float(sum(v.float().pow(2).sum() for v in delta.values()) ** 0.5))
    with sampling.engine(engine):
        run_measurements(cfg, rec, job_dir, merged, tok, task, base)
    trajectory = block(cfg, "trajectory")
    if trajectory["every"] > 0 and trajectory["analyze"]:
        from harness.analysis.trajectory import analyze_trajectory

        with rec.stage("trajectory"):
            summary = analyze_trajectory(job_dir, trajectory["fit_fraction"])
        rec.update(trajectory={k: summary[k] for k in ("kind", "snapshots", "storage_bytes", "whole")})
        if trajectory["eval_extrapolated"]:
            from harness.measure.extrapolated import evaluate_extrapolated

            with rec.stage("trajectory_eval"):
                evaluate_extrapolated(cfg, job_dir, merged, tok, task, base)
    if trajectory["every"] > 0 and trajectory.get("entk", False):
        from harness.measure.entk_steps import entk_steps_for_run

        with rec.stage("trajectory_entk"):
            entk_steps_for_run(cfg, job_dir, merged, tok, task, base)


def engine_of(cfg: DictConfig) -> str:
    """Where the measurements sample: through vLLM when the run generates with it (``objective.use_vllm``)."""
    return "vllm" if OmegaConf.select(cfg, "objective.use_vllm", default=False) else "hf"


# --- fault injection (``fault.*``): a launch setup's failure handling, tested on purpose ----------------------


class InjectedFault(RuntimeError):
    """The failure ``fault.rank`` / ``fault.stage`` asked for."""


def _job_overrides() -> set[str]:
    """This job's command-line overrides as given (``adapter=lora``); empty outside a Hydra job."""
    from hydra.core.hydra_config import HydraConfig

    return set(HydraConfig.get().overrides.task) if HydraConfig.initialized() else set()


def _fault_here(cfg: DictConfig, stage: str) -> bool:
    """``fault.job``: every item is one of the job's overrides (not a piece of its directory name, which is
    cut and hashed when long)."""
    f = cfg.get("fault") or {}
    job = f.get("job")
    parts = [job] if isinstance(job, str) else list(job or [])
    return (f.get("rank") is not None and int(f.rank) == dist.rank() and f.get("stage", "train") == stage
            and {str(p) for p in parts} <= _job_overrides())


def fault_point(cfg: DictConfig, stage: str) -> None:
    if _fault_here(cfg, stage):
        raise InjectedFault(f"injected fault (fault.rank={dist.rank()}, fault.stage={stage})")


def fault_callbacks(cfg: DictConfig) -> list:
    """``fault.stage=train``: a trainer callback that raises on the chosen rank after the first optimizer step,
    while the other ranks go on into the next step's collectives."""
    if not _fault_here(cfg, "train"):
        return []
    from transformers import TrainerCallback

    class RaiseAfterFirstStep(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            fault_point(cfg, "train")

    return [RaiseAfterFirstStep()]


class Terminated(BaseException):
    """SIGTERM: the launcher is stopping this process (torchrun does so when another rank died)."""


def _on_sigterm(signum, frame):  # noqa: ARG001
    raise Terminated("terminated by SIGTERM (another rank died, or the launcher or scheduler stopped the job)")


@hydra.main(config_path=CONF_DIR, config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    from harness.analysis.sweep import SKIPPED
    from harness.launch.slots import default_slots, job_slot, threads_per_job

    dist.setup(OmegaConf.select(cfg, "dist.timeout_s", default=None))
    dist.begin_job()
    hc = HydraConfig.get()
    # The job directory is the main process's (the others' Hydra writes into a throwaway dir, see cli()).
    job_dir = Path(dist.broadcast(str(hc.runtime.output_dir)))
    rec = RunRecord(job_dir, write=dist.is_main())
    changed = changed_settings(rec.data.get("settings"), settings_of(cfg)) if rec.status() == "done" else []
    if dist.broadcast(rec.status() == "done" and not changed) and not cfg.get("force", False):
        if dist.is_main():
            print(f"[harness] skip {job_dir.name}: already done", flush=True)
        return
    if changed and dist.is_main():  # e.g. an adapter's YAML was edited: the stored run is not this config's
        print(f"[harness] rerun {job_dir.name}: done with other settings ({', '.join(changed[:6])}"
              f"{', ...' if len(changed) > 6 else ''})", flush=True)
    only = cfg.get("run_objectives")
    if only and cfg.objective.name not in only:  # a grid cell the study does not want (e.g. SFT with a KL arm)
        rec.start(cfg)
        rec.finish(SKIPPED, f"run_objectives {list(only)} excludes objective {cfg.objective.name}")
        if dist.is_main():
            print(f"[harness] skip {job_dir.name}: objective {cfg.objective.name} not in run_objectives", flush=True)
        return
    slots = cfg.get("max_local_jobs") or default_slots(hc.launcher.get("_target_"))
    threads = threads_per_job(slots)
    if threads:  # jobs sharing this machine split its cores instead of each taking them all (and a job's ranks)
        import torch

        torch.set_num_threads(max(1, threads // int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))
    # A job holds one slot, whatever its number of processes: its main process takes it for all of them.
    with job_slot(job_dir.parent, slots if dist.is_main() else None):
        run_job(cfg, job_dir, rec)


def run_job(cfg: DictConfig, job_dir: Path, rec: RunRecord) -> None:
    from harness.launch.wandb_run import finish_wandb, start_wandb
    from harness.train.objectives.common import free_memory

    rec.start(cfg)
    if dist.is_main():
        print(f"[harness] run {job_dir}" + (f" on {dist.world_size()} processes" if dist.active() else ""),
              flush=True)
        start_wandb(cfg, job_dir, rec)  # a W&B start failure is recorded; the run goes on without logging
    failed = False
    try:
        train_run(cfg, job_dir, rec)
        dist.barrier()  # a rank that failed after the main process finished (and aborted the group) fails it here
        rec.finish("done")
    except Terminated as exc:  # the launch is ending: record why, do not wait for the other ranks
        rec.finish("failed", str(exc))
        raise SystemExit(143) from None
    except Exception as exc:  # a failed run is recorded on every rank and the sweep goes on
        # the reason of the rank that failed first; the other ranks leave their collectives at once
        reason = dist.fail(exc)
        if dist.is_main():
            (job_dir / "error.txt").write_text(traceback.format_exc()
                                               + ("" if reason.endswith(str(exc)) else f"\nrun failed: {reason}\n"))
        rec.finish("failed", reason)
        FAILED.append(f"{job_dir}: {reason}")
        print(f"[harness] FAILED {job_dir.name}{f' (rank {dist.rank()})' if dist.active() else ''}: {reason}",
              file=sys.stderr, flush=True)
        failed = True
    finally:
        if dist.is_main():
            finish_wandb(rec)
        free_memory()  # the basic launcher runs the next job in this process
    if failed:
        # Outside the except block: the traceback's frames, and with them the trainer whose DDP/FSDP wrapper holds
        # the old process group, are gone, so the group really closes (gloo has no abort: its sockets close only
        # when the group is freed, and that is what ends the other ranks' collectives at once).
        dist.recover()  # a fresh process group for the next job
    if dist.is_main():
        print(f"[harness] {rec.data['status']} in {rec.data['timings'].get('total', 0):.1f}s: {job_dir}", flush=True)


def check_argv(argv: list[str]) -> None:
    """Compose the config of every job the command line launches (sweeps expanded) and validate each, before
    Hydra starts: a bad value exits 2 with one line per bad setting, and nothing is written."""
    from hydra._internal.utils import get_args_parser

    from harness.launch.validate import check_launch

    args = get_args_parser().parse_args(argv)
    if args.help or args.hydra_help or args.cfg or args.info or args.shell_completion or args.experimental_rerun:
        return  # Hydra only shows something
    if args.config_dir or args.config_path:
        return  # a user's config tree beside or instead of ours: Hydra composes it, the job checks nothing here
    errors = check_launch(args.overrides, args.multirun, CONF_DIR, args.config_name or "config")
    if errors:
        print("\n".join(errors), file=sys.stderr)
        raise SystemExit(2)


def rank_overrides() -> list[str]:
    """Hydra overrides for a rank other than the main process: its Hydra output (.hydra/, logs, multirun.yaml)
    goes to a throwaway directory, so only the main process writes into the sweep; the job directory itself
    comes from the main process (:func:`main`)."""
    import atexit
    import shutil
    import tempfile

    tmp = tempfile.mkdtemp(prefix=f"harness-rank{dist.rank()}-")
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    return [f"hydra.run.dir={tmp}/run", f"hydra.sweep.dir={tmp}/sweep", "hydra.output_subdir=null"]


def cli() -> None:
    import signal

    argv = sys.argv[1:]
    validate_argv(argv, CONF_DIR)
    OmegaConf.register_new_resolver("harness_now", lambda: time.strftime("%Y%m%d-%H%M%S"), replace=True)
    check_argv(argv)
    dist.export_submitit_env()
    if not dist.is_main():
        sys.argv += rank_overrides()
    signal.signal(signal.SIGTERM, _on_sigterm)
    main()
    if FAILED and not any(a in ("-m", "--multirun") for a in argv):  # a multirun reports in harness.launch.callbacks
        print(f"[harness] run failed: {FAILED[-1]}", file=sys.stderr, flush=True)
        raise SystemExit(1)


if __name__ == "__main__":
    cli()
