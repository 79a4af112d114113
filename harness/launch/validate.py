"""Every value a user sets, checked before anything loads: one line naming the key, the bad value and what is
valid (the same treatment as a bad name), so a bad setting never starts a run that fails late or not at all.

Two passes over each composed job config:

1. each key's type, from the config tree itself (:func:`harness.core.config.key_types`: the type of its default
   in the YAMLs), then :data:`RULES`, a table of key -> range or choice, plus a few cross-key checks; imports
   nothing heavy, so a typo is reported at once;
2. the plug-ins the config names (model source, task kind, objective, adapter), each looked up in its registry
   and asked to check its own settings (a JSONL task's file must exist and parse; an ``hf`` model's
   ``name_or_path`` must be a local checkpoint or a hub id). This imports the plug-in modules (TRL for the
   objectives), which the run then needs anyway.

:func:`harness.launch.run.cli` composes the config of every job a command line would launch (sweeps expanded) with
:func:`job_overrides` / :func:`compose_jobs` and runs :func:`check` on each before Hydra starts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from harness.core.config import key_types
from harness.core.dist import per_device, world_size
from harness.core.registry import BadValue, UnknownName, bad_choice
from harness.data.sampling import SAMPLERS
from harness.data.sources import DTYPE_NAMES
from harness.train.retrain import CLASSES as RETRAIN_CLASSES
from harness.train.retrain import SEEDS as RETRAIN_SEEDS

# --- rules -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """A predicate on a value and the words saying what is valid."""

    ok: Callable[[Any], bool]
    valid: str


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and v == v  # v == v: not NaN


def integer(lo: int | None = None, hi: int | None = None, null: bool = False) -> Rule:
    words = ("an integer" + (f" in [{lo}, {hi}]" if lo is not None and hi is not None else
                             f" >= {lo}" if lo is not None else "") + (" or null" if null else ""))
    return Rule(lambda v: (null and v is None) or (_is_int(v) and (lo is None or v >= lo)
                                                   and (hi is None or v <= hi)), words)


def number(lo: float | None = None, hi: float | None = None, lo_open: bool = False, hi_open: bool = False,
           null: bool = False) -> Rule:
    """A real number in the interval given (``lo_open``: lo excluded)."""
    parts = []
    if lo is not None:
        parts.append(f"{'>' if lo_open else '>='} {lo}")
    if hi is not None:
        parts.append(f"{'<' if hi_open else '<='} {hi}")
    words = "a number" + (" " + " and ".join(parts) if parts else "") + (" or null" if null else "")

    def ok(v: Any) -> bool:
        if null and v is None:
            return True
        if not _is_num(v):
            return False
        if lo is not None and (v <= lo if lo_open else v < lo):
            return False
        return hi is None or (v < hi if hi_open else v <= hi)

    return Rule(ok, words)


def one_of(*values: Any) -> Rule:
    return Rule(lambda v: v in values, " | ".join(map(str, values)))


NAME = Rule(lambda v: isinstance(v, str) and bool(v) and "/" not in v, "a non-empty name without '/'")
STRINGS = Rule(lambda v: isinstance(v, list | ListConfig) and all(isinstance(x, str) for x in v),
               "a list of strings")
DEVICE = Rule(lambda v: isinstance(v, str) and re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", v) is not None,
              "auto | cpu | cuda | cuda:<n> | mps")
TARGETS = Rule(lambda v: v is None or isinstance(v, str) or STRINGS.ok(v),
               "a module name pattern (e.g. all-linear), a list of module names, or null")


def _template_ok(v: Any) -> bool:
    try:
        return isinstance(v, str) and "{question}" in v and isinstance(v.format(question="q"), str)
    except (KeyError, IndexError, ValueError):
        return False


TEMPLATE = Rule(_template_ok, "a format string with {question} and no other {field}")
# W&B rejects these characters in a project name (wandb.init raises UsageError).
WANDB_PROJECT = Rule(lambda v: isinstance(v, str) and 0 < len(v) <= 128 and not re.search(r"[/\\#?%:]", v),
                     "a W&B project name (1-128 characters, none of / \\ # ? % :)")
# TRL 1.16's GRPOConfig.loss_type values; any other fails only at the first loss computation.
LOSS_TYPES = ("grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo")


def _objective_names() -> tuple[str, ...]:
    """The objective configs a run can name (conf/objective/*.yaml), read without importing TRL."""
    from harness import CONF_DIR

    return tuple(sorted(p.stem for p in (Path(CONF_DIR) / "objective").glob("*.yaml")))


OBJECTIVES = Rule(lambda v: v is None or (STRINGS.ok(v) and bool(v) and set(v) <= set(_objective_names())),
                  f"null or a non-empty list of {' | '.join(_objective_names())}")


def _adapter_kind(cfg: DictConfig) -> str | None:
    ad = cfg.get("adapter")
    return ad.get("kind", ad.get("name")) if ad is not None else None


def _warmup_on(cfg: DictConfig) -> bool:
    return bool(OmegaConf.select(cfg, "model.warmup.enabled", default=False))


def _sparse(cfg: DictConfig) -> bool:
    return _adapter_kind(cfg) == "sparse"


#: (key, rule, when): the rule applies where the key exists (and ``when(cfg)`` holds); ``a.*`` is each child.
#: Ranges and choices only: a key's type comes from its default (:func:`check_types`).
RULES: list[tuple[str, Rule, Callable[[DictConfig], bool] | None]] = [
    ("name", NAME, None),
    ("seed", integer(0, 2**32 - 1), None),  # numpy's seed range (TRL seeds numpy with it)
    ("store_dtype", one_of(*DTYPE_NAMES), None),
    ("max_local_jobs", integer(1, null=True), None),
    ("run_objectives", OBJECTIVES, None),
    ("dist.timeout_s", number(0, lo_open=True), None),
    ("fault.rank", integer(0, null=True), None),
    ("fault.stage", one_of("start", "train", "end"), None),
    ("fault.job", Rule(lambda v: v is None or isinstance(v, str) or STRINGS.ok(v), "a text, a list of texts or null"),
     None),
    # model
    ("model.dtype", one_of(*DTYPE_NAMES), None),
    ("model.device", DEVICE, None),
    ("model.warmup.steps", integer(1), _warmup_on),
    ("model.warmup.batch_size", integer(1), _warmup_on),
    ("model.warmup.lr", number(0, lo_open=True), _warmup_on),
    ("model.warmup.max_seq_len", integer(1), _warmup_on),
    ("model.warmup.seed", integer(0), _warmup_on),
    ("model.warmup.task.n_train", integer(1), _warmup_on),
    ("model.warmup.task.n_test", integer(0), _warmup_on),
    ("model.warmup.task.prompt_template", TEMPLATE, _warmup_on),
    # task
    ("task.name", NAME, None),
    ("task.n_train", integer(1), None),
    ("task.n_test", integer(1), None),  # the held-out split is what eval, eNTK and pass rates measure
    ("task.seed", integer(0), None),
    ("task.prompt_template", TEMPLATE, None),
    # adapter
    ("adapter.r", integer(1), None),
    ("adapter.alpha", number(0, lo_open=True), lambda c: not _sparse(c)),  # LoRA scaling
    ("adapter.alpha", number(0, 1, lo_open=True, hi_open=True), _sparse),  # share of principal entries
    ("adapter.dropout", number(0, 1, hi_open=True), None),
    ("adapter.density", number(0, 1, lo_open=True), None),
    ("adapter.principal_rank", integer(1), None),
    ("adapter.target_modules", TARGETS, None),
    ("adapter.lr.*", number(0, lo_open=True), None),
    # objective
    ("objective.steps", integer(1), None),
    ("objective.batch_size", integer(1), None),
    ("objective.prompts_per_step", integer(1), None),
    ("objective.samples_per_prompt", integer(1), None),
    ("objective.num_generations", integer(2), None),  # a group advantage needs >= 2 completions per prompt
    ("objective.max_completion_length", integer(1), None),
    ("objective.max_seq_len", integer(1), None),
    ("objective.temperature", number(0, lo_open=True), None),
    ("objective.beta", number(0), None),
    ("objective.reward_rate", number(0, 1), None),
    ("objective.lmbda", number(0, 1), None),
    ("objective.jsd_beta", number(0, 1), None),
    ("objective.lr", number(0, lo_open=True, null=True), None),
    ("objective.warmup_steps", integer(0), None),
    ("objective.max_grad_norm", number(0, lo_open=True), None),
    ("objective.grad_accum", integer(1), None),
    ("objective.loss_type", one_of(*LOSS_TYPES), None),
    ("objective.scale_rewards", one_of("group", "batch", "none", True, False), None),
    ("objective.sampler", one_of(*SAMPLERS), None),
    ("objective.vllm_mode", one_of("colocate", "server"), None),
    # eval
    ("eval.limit", integer(1, null=True), None),
    ("eval.max_gen_toks", integer(1), None),
    ("eval.until", STRINGS, None),
    ("eval.batch_size", integer(1), None),
    ("eval.tasks", STRINGS, None),
    # eNTK
    ("entk.n_probe", integer(1), None),
    ("entk.k", integer(1), None),
    ("entk.batch_size", integer(1), None),
    # pass rates
    ("passrate.k", integer(1), None),
    ("passrate.temperature", number(0, lo_open=True), None),
    ("passrate.max_new_tokens", integer(1), None),
    ("passrate.batch_size", integer(1), None),
    ("passrate.seed", integer(0), None),
    ("passrate.splits", Rule(lambda v: STRINGS.ok(v) and bool(v) and set(v) <= {"train", "test"},
                             "a non-empty list of train | test"), None),
    ("passrate.tau", number(0, 1), None),
    ("passrate.grad_sim.max_rollouts", integer(1), None),
    ("passrate.grad_sim.at", one_of("base", "end"), None),
    ("passrate.grad_sim.n_perm", integer(1), None),
    ("passrate.grad_sim.dim", integer(1), None),
    ("passrate.grad_sim.seed", integer(0), None),
    ("passrate.grad_sim.params", one_of("matrices", "all"), None),
    ("passrate.grad_sim.n_boot", integer(1), None),
    # pass@k curves (harness/measure/passk.py) and KL to the base (harness/measure/kl.py)
    ("passk.n", integer(1), None),
    ("passk.temperature", number(0, lo_open=True), None),
    ("passk.max_new_tokens", integer(1), None),
    ("passk.n_prompts", integer(1), None),
    ("passk.batch_size", integer(1), None),
    ("passk.seed", integer(0), None),
    ("kl.n_prompts", integer(1), None),
    ("kl.samples", integer(1), None),
    ("kl.max_new_tokens", integer(1), None),
    ("kl.temperature", number(0, lo_open=True), None),
    ("kl.sample_from", one_of("base", "tuned"), None),
    ("kl.batch_size", integer(1), None),
    ("kl.seed", integer(0), None),
    # ΔW surgery (harness/measure/surgery.py); each edit's name and parameters: check_plugins
    ("surgery.seed", integer(0), None),
    ("surgery.only", Rule(lambda v: v is None or STRINGS.ok(v), "null or a list of names from surgery.edits"), None),
    ("surgery.edits.*", Rule(lambda v: v is None or (isinstance(v, DictConfig) and isinstance(v.get("edit"), str)),
                             "null or a mapping {edit: <name>, params: {...}}"), None),
    ("objective.heldout_every", integer(0), None),
    ("objective.heldout_n", integer(1), None),
    # prompt filter (harness/train/prompt_filter.py)
    ("prompt_filter.k", integer(1), None),
    ("prompt_filter.temperature", number(0, lo_open=True), None),
    ("prompt_filter.lo", number(0, 1), None),
    ("prompt_filter.hi", number(0, 1), None),
    ("prompt_filter.max_new_tokens", integer(1), None),
    ("prompt_filter.batch_size", integer(1), None),
    ("prompt_filter.seed", integer(0), None),
    # update trajectories (harness/train/trajectory.py, harness/analysis/trajectory.py)
    ("trajectory.every", integer(0), None),
    ("trajectory.sketch", Rule(lambda v: v == "auto" or isinstance(v, bool), "auto | true | false"), None),
    ("trajectory.max_full_gb", number(0, lo_open=True), None),
    ("trajectory.sketch_dim", integer(1), None),
    ("trajectory.sketch_seed", integer(0), None),
    ("trajectory.fit_fraction", number(0, 1, lo_open=True, hi_open=True), None),
    ("trajectory.entk", one_of(True, False), None),
    # U5 augmentation (harness/measure/augment.py), U4 retraining (harness/train/retrain.py)
    ("augment.kinds", Rule(lambda v: STRINGS.ok(v) and bool(v) and set(v) <= {"rephrase", "decompose"},
                           "a non-empty list of rephrase | decompose"), None),
    ("augment.max_prompts", integer(2), None),
    ("augment.dim", integer(1), None),
    ("augment.seed", integer(0), None),
    ("augment.params", one_of("matrices", "all"), None),
    ("retrain.classes", Rule(lambda v: STRINGS.ok(v) and bool(v) and set(v) <= set(RETRAIN_CLASSES),
                             f"a non-empty list of {' | '.join(RETRAIN_CLASSES)}"), None),
    ("retrain.seeds", one_of(*RETRAIN_SEEDS), None),
    # logger, report
    ("logger.backend", one_of("wandb", "none"), None),
    ("logger.mode", one_of("offline", "online", "disabled"), lambda c: c.logger.get("backend") == "wandb"),
    ("logger.project", WANDB_PROJECT, lambda c: c.logger.get("backend") == "wandb"),
]

_ABSENT = object()


def _values(cfg: DictConfig, key: str) -> Iterator[tuple[str, Any]]:
    """(full key, value) pairs the row ``key`` names in ``cfg`` (none when absent)."""
    if key.endswith(".*"):
        node = OmegaConf.select(cfg, key[:-2], default=None)
        if isinstance(node, DictConfig):
            for k in node:
                yield f"{key[:-2]}.{k}", node[k]
        return
    value = OmegaConf.select(cfg, key, default=_ABSENT)
    if value is not _ABSENT:
        yield key, value


def _plain(v: Any) -> Any:
    return OmegaConf.to_container(v) if isinstance(v, DictConfig | ListConfig) else v


TYPE_WORDS = {bool: "true | false", int: "an integer", float: "a number", str: "a text", list: "a list",
              dict: "a mapping"}


def _is_type(value: Any, kind: type) -> bool:
    if kind is float:
        return _is_num(value)
    if kind is int:
        return _is_int(value)
    if kind is list:
        return isinstance(value, list | ListConfig)
    if kind is dict:
        return isinstance(value, dict | DictConfig)
    return isinstance(value, kind)


def _ruled(key: str) -> bool:
    return any(r == key or (r.endswith(".*") and key.startswith(r[:-1])) for r, _, _ in RULES)


def check_types(cfg: DictConfig, missing: set[str]) -> Iterator[BadValue]:
    """Each key the config tree defines holds a value of its default's type (a key with a row in :data:`RULES`
    is checked there, more strictly; a key only ever null has no type to check)."""
    for key, types in key_types().items():
        kinds = [k for k in types if k is not type(None)]
        if not kinds or key in missing or _ruled(key) or ".peft_config." in key:  # peft checks its own (pass 2)
            continue
        value = OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=False)
        if value is _ABSENT or (value is None and type(None) in types):
            continue
        if not any(_is_type(value, k) for k in kinds):
            words = " | ".join(dict.fromkeys(TYPE_WORDS[k] for k in kinds if k in TYPE_WORDS))
            yield BadValue(key, _plain(value), words + (" or null" if type(None) in types else ""))


def check_rules(cfg: DictConfig) -> Iterator[BadValue]:
    """Pass 1: the types, the table, then the checks across keys. Cheap: no model, no heavy import."""
    missing = set(OmegaConf.missing_keys(cfg))
    for key in missing:
        if key != "task.path":  # the task kind names what that file must be (pass 2)
            yield BadValue(key, "???", "a value (the config leaves it to you)")
    yield from check_types(cfg, missing)
    for key, rule, when in RULES:
        if when is not None and not when(cfg):
            continue
        for full, value in _values(cfg, key):
            if not rule.ok(value):
                yield BadValue(full, _plain(value), rule.valid)
    yield from _cross(cfg)


def _cross(cfg: DictConfig) -> Iterator[BadValue]:
    ent = cfg.get("entk")
    if ent is not None and _is_int(ent.get("k")) and _is_int(ent.get("n_probe")) and ent.k > ent.n_probe:
        yield BadValue("entk.k", ent.k, f"an integer <= entk.n_probe = {ent.n_probe}")
    pf = cfg.get("prompt_filter")
    if pf is not None and _is_num(pf.get("lo")) and _is_num(pf.get("hi")) and pf.lo >= pf.hi:
        yield BadValue("prompt_filter.lo", pf.lo, f"a number < prompt_filter.hi = {pf.hi} (keeps lo < pass@1 < hi)")
    every = OmegaConf.select(cfg, "trajectory.every", default=0)
    if _is_int(every) and every > 0 and OmegaConf.select(cfg, "dist.fsdp", default=False):
        yield BadValue("trajectory.every", every, "0 with dist.fsdp=true (snapshots need the whole model on one "
                                                  "process)")
    tr = cfg.get("trajectory")
    steps = OmegaConf.select(cfg, "objective.steps", default=None)
    frac = tr.get("fit_fraction") if tr is not None else None
    if _is_int(every) and every > 0 and _is_int(steps) and _is_num(frac) and min(every, steps) > frac * steps:
        yield BadValue("trajectory.every", every, f"an integer <= trajectory.fit_fraction x objective.steps = "
                                                  f"{frac * steps:g}: the extrapolation fits on the snapshots up to "
                                                  "there and needs one")
    if tr is not None and tr.get("eval_extrapolated") is True and (tr.get("sketch") is True
                                                                   or tr.get("analyze") is False):
        yield BadValue("trajectory.eval_extrapolated", True, "false unless trajectory.sketch is false or auto and "
                                                             "trajectory.analyze is true (the extrapolated ΔW needs "
                                                             "full snapshots and the analysis)")
    if tr is not None and tr.get("entk") is True and tr.get("sketch") is True:
        yield BadValue("trajectory.entk", True, "false unless trajectory.sketch is false or auto (the eNTK at a "
                                                "snapshot needs the full ΔW)")
    rt = cfg.get("retrain")
    if rt is not None and rt.get("technique") is not None and rt.get("from") is None:
        yield BadValue("retrain.from", None, "a first study's sweep dir, whose unlearnable prompts retrain.technique "
                                             "retrains (e.g. retrain.from=outputs/claims)")
    ad, obj = cfg.get("adapter"), cfg.get("objective")
    if _sparse(cfg) and ad.get("criterion") == "non_principal":
        d, a = ad.get("density"), ad.get("alpha", 0.2)
        if _is_num(d) and _is_num(a) and d > 1 - a:
            yield BadValue("adapter.density", d, f"<= 1 - adapter.alpha = {1 - a:g} for criterion non_principal "
                                                 "(the mask lies outside the principal share)")
    yield from _global_batch(obj)
    if ad is not None and obj is not None and obj.get("lr") is None:
        # The adapter's default lr for this objective (``adapter_lr`` names which, for a new objective).
        which = obj.get("adapter_lr") or obj.get("name")
        lrs = ad.get("lr")
        if not isinstance(lrs, DictConfig) or which not in lrs:
            yield BadValue("objective.lr", None, f"a number > 0: adapter {ad.get('name')!r} has no default lr for "
                                                 f"objective {which!r}")


def _global_batch(obj: DictConfig | None) -> Iterator[BadValue]:
    """Batch sizes are global: the launch's processes x accumulation steps must divide them."""
    if obj is None or not _is_int(obj.get("grad_accum", 1)):
        return
    accum = int(obj.get("grad_accum", 1))
    sizes = [("objective.batch_size", obj.get("batch_size"), 1)]
    if _is_int(obj.get("num_generations")):
        sizes = [("objective.prompts_per_step", obj.get("prompts_per_step"), int(obj.num_generations))]
    for key, value, per in sizes:
        if not _is_int(value):
            continue
        try:
            per_device(value * per, accum)
        except ValueError:
            n = world_size() * accum
            what = f"{key} x objective.num_generations" if per > 1 else key
            yield BadValue(key, value, f"a value whose global batch ({what}) is a multiple of {n} "
                                       f"({world_size()} process(es) x objective.grad_accum {accum})")


def check_plugins(cfg: DictConfig, heavy: bool = True) -> Iterator[Exception]:
    """Pass 2: each plug-in the config names exists and accepts its settings (model source and task kinds;
    with ``heavy``, also the adapter and the objective, whose modules import peft and TRL)."""
    from harness.data.sources import SOURCES
    from harness.data.tasks import KINDS

    def guarded(key: str, fn: Callable[[], None]) -> Iterator[Exception]:
        try:
            fn()
        except (BadValue, UnknownName) as exc:
            yield exc
        except Exception as exc:  # a plug-in's own error (e.g. a missing package): still one line
            yield ValueError(f"{key}: {' '.join(str(exc).split())}")

    if cfg.get("model") is not None:
        yield from guarded("model.source", lambda: SOURCES.get(cfg.model.source).check(cfg.model))
    tasks = [("task", cfg.get("task"))]
    if _warmup_on(cfg):
        tasks.append(("model.warmup.task", cfg.model.warmup.task))
    ev = cfg.get("eval")
    if ev is not None and ev.get("enabled") and isinstance(ev.get("ood"), DictConfig):
        tasks += [(f"eval.ood.{name}", entry) for name, entry in ev.ood.items() if entry is not None]
    for key, tcfg in tasks:
        if tcfg is not None:
            yield from guarded(key, lambda k=key, t=tcfg: KINDS.get(t.get("kind", "reasoning_gym")).check(t, k))
    sg = cfg.get("surgery")
    if sg is not None and sg.get("enabled") and isinstance(sg.get("edits"), DictConfig):
        from harness.measure.edits import check as check_edit

        for name, spec in sg.edits.items():
            if spec is not None:
                yield from guarded(f"surgery.edits.{name}", lambda n=name, e=spec: check_edit(f"surgery.edits.{n}",
                                                                                              _plain(e)))
        named = [n for n, e in sg.edits.items() if e is not None]
        for name in sg.get("only") or []:
            if name not in named:
                yield UnknownName(bad_choice("surgery.only entry", str(name), named).removeprefix("error: "))
    rt = cfg.get("retrain")
    if rt is not None and rt.get("from") is not None:
        from harness.train.retrain import check as check_retrain

        yield from guarded("retrain.from", lambda: check_retrain(rt, cfg.get("task")))
    obj = cfg.get("objective")
    if obj is not None and obj.get("reward") is not None:
        from harness.data.rewards import REWARDS

        yield from guarded("objective.reward", lambda: REWARDS.get(str(obj.reward)))
    if not heavy:
        return
    ad = cfg.get("adapter")
    if ad is not None:
        yield from guarded("adapter", lambda: _check_adapter(cfg))
    if obj is not None:
        yield from guarded("objective", lambda: _check_objective(obj))


def _check_adapter(cfg: DictConfig) -> None:
    """The adapter kind exists and accepts its settings on this model (:meth:`harness.train.adapters.Adapter.check`:
    unknown keys, peft's own config checks, target modules matched against the model's module names)."""
    from harness.train.adapters import adapter_class

    adapter_class(cfg.adapter).check(cfg.adapter, _module_names(cfg.get("model")))


_MODULES: dict[str, dict[str, type] | None] = {}


def _module_names(model: DictConfig | None) -> dict[str, type] | None:
    """The model's module names (from its architecture, no weights), once per model config in a launch."""
    if model is None:
        return None
    key = OmegaConf.to_yaml(OmegaConf.masked_copy(model, [k for k in model if k != "warmup"]))
    if key not in _MODULES:
        from harness.data.models import module_names

        _MODULES[key] = module_names(model)
    return _MODULES[key]


def _check_objective(obj: DictConfig) -> None:
    from harness.train.objectives import OBJECTIVES

    OBJECTIVES.get(obj.name)
    if "teacher" in obj:  # a distillation objective: its teacher must name something loadable
        from harness.train.objectives.gkd import teacher_config

        teacher_config(OmegaConf.select(obj, "teacher", throw_on_missing=False))
    if obj.get("lr_scheduler") is not None:
        from transformers.trainer_utils import SchedulerType

        valid = [s.value for s in SchedulerType]
        if obj.lr_scheduler not in valid:
            raise BadValue("objective.lr_scheduler", obj.lr_scheduler, " | ".join(valid))


#: The passes, cheapest first; a later pass runs only when every job passed the earlier ones.
PASSES: list[Callable[[DictConfig], Iterator[Exception]]] = [
    check_rules, lambda cfg: check_plugins(cfg, heavy=False), check_plugins]


def check(cfg: DictConfig) -> list[str]:
    """The error lines (``error: ...``) for one composed job config; empty when it is valid."""
    for run_pass in PASSES:
        errors = list(dict.fromkeys(f"error: {e}" for e in run_pass(cfg)))
        if errors:
            return errors
    return []


# --- the jobs a command line launches ----------------------------------------------------------------------


def job_overrides(overrides: list[str], multirun: bool, conf_dir: str | Path,
                  config_name: str = "config") -> list[list[str]]:
    """The override list of every job ``python -m harness.run [-m] OVERRIDES`` launches: for ``-m``, the
    command line's sweeps (``a=x,y``) crossed with the ``hydra.sweeper.params`` of the composed config (a
    ``sweeps=<study>`` file), the command line winning on shared keys, as Hydra's BasicSweeper does."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if not multirun:
        return [list(overrides)]
    parser = OverridesParser.create()
    jobs: dict[tuple[str, ...], None] = {}
    for cli_job in BasicSweeper.split_arguments(parser.parse_overrides(overrides), None)[0]:
        hcfg = _compose(conf_dir, config_name, cli_job, hydra=True)
        params = OmegaConf.select(hcfg, "hydra.sweeper.params", default=None) or {}
        merged = [f"{k}={v}" for k, v in params.items()] + list(overrides)
        for job in BasicSweeper.split_arguments(parser.parse_overrides(merged), None)[0]:
            jobs[tuple(job)] = None
    return [list(j) for j in jobs]


def _compose(conf_dir: str | Path, config_name: str, overrides: list[str], hydra: bool = False) -> DictConfig:
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(Path(conf_dir).resolve()), version_base="1.3"):
        return compose(config_name=config_name, overrides=overrides, return_hydra_config=hydra)


def compose_jobs(jobs: list[list[str]], conf_dir: str | Path, config_name: str = "config") -> list[DictConfig]:
    """The job configs (without Hydra's own keys), as each job of the launch will see them."""
    return [_compose(conf_dir, config_name, job) for job in jobs]


def left_out(cfg: DictConfig) -> bool:
    """A grid cell that a valid ``run_objectives`` leaves out: the run marks it skipped before anything loads
    (harness.launch.run), so its settings are never used and not checked (e.g. the claims study's ``gkd``
    column in arms with no teacher)."""
    only = cfg.get("run_objectives")
    name = OmegaConf.select(cfg, "objective.name", default=None, throw_on_missing=False)
    return bool(only) and OBJECTIVES.ok(only) and name not in only


def check_launch(overrides: list[str], multirun: bool, conf_dir: str | Path,
                 config_name: str = "config") -> list[str]:
    """Error lines for a command line: composition errors, else pass 1 over every job, then pass 2."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        cfgs = compose_jobs(job_overrides(overrides, multirun, conf_dir, config_name), conf_dir, config_name)
    except (HydraException, OmegaConfBaseException) as exc:
        return [f"error: {' '.join(str(exc).split())}"]
    cfgs = [cfg for cfg in cfgs if not left_out(cfg)]
    errors: list[str] = []
    for run_pass in PASSES:  # every job's cheap checks first: a typo costs no plug-in import
        for cfg in cfgs:
            try:
                found = [f"error: {e}" for e in run_pass(cfg)]
            except OmegaConfBaseException as exc:  # e.g. an interpolation that does not resolve
                found = [f"error: {' '.join(str(exc).split())}"]
            errors += [e for e in found if e not in errors]
        if errors:
            break
    return errors
