"""Bad values get the treatment of bad names: one line naming the key, the value and what is valid, exit 2,
nothing written. One CLI test per row of issue 11's table; the other rules through the same checker
in-process (it is what the CLI runs before Hydra starts)."""

from __future__ import annotations

import pytest

from harness.launch.validate import check_launch, job_overrides
from tests.conftest import CONF, run_cli

TINY = ["model=tiny", "logger=none", "name=t"]


@pytest.fixture(scope="module")
def bad_jsonl(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "bad.jsonl"
    path.write_text('{"prompt": "1+1", "answer": "2"}\n\n{"prompt": "2+2", "answer": "4"}\nnot json\n')
    return path


def assert_rejected(tmp_path, args: list[str], *needles: str) -> str:
    """Runs the CLI; exit 2, the last stderr line holds every needle, and nothing was written."""
    r = run_cli(*args, out=tmp_path)
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith("error: bad ") and "valid:" in line, line
    for needle in needles:
        assert needle in line, (needle, line)
    assert not any(tmp_path.iterdir()), list(tmp_path.rglob("*"))  # no sweep dir, no run dir
    return line


# --- the table of issue 11, each row through the CLI ---------------------------------------------------------


def test_jsonl_path_missing(tmp_path):
    assert_rejected(tmp_path, [*TINY, "task=jsonl", "task.path=/nonexistent.jsonl"],
                    "task.path '/nonexistent.jsonl'", "does not exist")


def test_jsonl_bad_line_names_file_and_line(tmp_path, bad_jsonl):
    # line 4: the blank line 2 still counts, so the number is the one an editor shows
    assert_rejected(tmp_path, [*TINY, "task=jsonl", f"task.path={bad_jsonl}"], f"{bad_jsonl}:4: not JSON")


def test_hf_local_dir_missing(tmp_path):
    assert_rejected(tmp_path, ["logger=none", "model=hf", "model.name_or_path=/nonexistent/dir"],
                    "model.name_or_path '/nonexistent/dir'", "does not exist")


def test_negative_steps(tmp_path):
    assert_rejected(tmp_path, [*TINY, "objective.steps=-1"], "objective.steps -1", "an integer >= 1")


def test_rank_zero(tmp_path):
    assert_rejected(tmp_path, [*TINY, "adapter=lora", "adapter.r=0"], "adapter.r 0", "an integer >= 1")


def test_seed_not_an_integer(tmp_path):
    assert_rejected(tmp_path, [*TINY, "seed=abc"], "seed 'abc'", "an integer")


def test_density_above_one(tmp_path):
    assert_rejected(tmp_path, [*TINY, "adapter=sparse", "adapter.density=1.5"], "adapter.density 1.5",
                    "> 0 and <= 1")


def test_store_dtype(tmp_path):
    assert_rejected(tmp_path, [*TINY, "store_dtype=int8"], "store_dtype 'int8'", "float32 | bfloat16")


def test_bad_value_in_one_job_of_a_sweep_stops_the_whole_sweep(tmp_path):
    # the second job of the sweep is bad: nothing runs, not even the good first job
    assert_rejected(tmp_path, ["-m", *TINY, "adapter=full,lora", "objective.steps=2,0"], "objective.steps 0")


# --- the same checker, in-process ------------------------------------------------------------------------


def errors(*overrides: str, multirun: bool = False) -> list[str]:
    return check_launch(list(overrides), multirun, CONF)


@pytest.mark.parametrize("override,needle", [
    ("objective.lr=0", "objective.lr 0"),
    ("objective.lr=-1e-4", "objective.lr -0.0001"),
    ("objective.steps=2.5", "objective.steps 2.5"),
    ("objective.batch_size=0", "objective.batch_size 0"),
    ("seed=-1", "seed -1"),
    ("model.dtype=float8", "model.dtype 'float8'"),
    ("model.device=gpu", "model.device 'gpu'"),
    ("task.n_train=0", "task.n_train 0"),
    ("task.prompt_template=no_field", "task.prompt_template 'no_field'"),
    ("adapter.lr.sft=0", "adapter.lr.sft 0"),
    ("entk.k=64", "entk.k 64"),  # more eigenvectors than probes
    ("eval.limit=0", "eval.limit 0"),
    ("passrate.tau=2", "passrate.tau 2"),
    ("prompt_filter.k=0", "prompt_filter.k 0"),
    ("prompt_filter.hi=0", "prompt_filter.lo 0.0"),  # lo must stay below hi
    ("force=maybe", "force 'maybe'"),  # no row in RULES: its type is its default's (a bool)
    ("kl.enabled=3", "kl.enabled 3"),
    ("passrate.splits=train", "passrate.splits 'train'"),
    ("objective.grad_accum=0", "objective.grad_accum 0"),
    ("name=a/b", "name 'a/b'"),
    ("logger.project=a/b", "logger.project 'a/b'"),
    ("run_objectives=[rlvr,ppo]", "run_objectives ['rlvr', 'ppo']"),
])
def test_rules(override, needle):
    found = errors("model=tiny", override)
    assert len(found) == 1 and needle in found[0] and "valid:" in found[0], found


@pytest.mark.parametrize("overrides,needle", [
    (["objective=rlvr", "objective.num_generations=1"], "objective.num_generations 1"),
    (["objective=rlvr", "objective.temperature=0"], "objective.temperature 0"),
    (["objective=rlvr", "objective.beta=-0.1"], "objective.beta -0.1"),
    (["objective=rlvr", "objective.loss_type=ppo"], "objective.loss_type 'ppo'"),
    (["adapter=sparse", "adapter.alpha=1.5"], "adapter.alpha 1.5"),
    (["adapter=sparse", "adapter.criterion=non_principal", "adapter.density=0.9"], "adapter.density 0.9"),
    (["adapter=lora", "adapter.dropout=1"], "adapter.dropout 1"),
    (["adapter=full", "~adapter.lr.rlvr", "objective=rlvr"], "objective.lr None"),  # no default lr
])
def test_rules_per_plugin(overrides, needle):
    found = errors("model=tiny", *overrides)
    assert len(found) == 1 and needle in found[0], found


def test_plugin_settings():
    # checked by the plug-in itself (pass 2): the sparse criterion, a peft config, the scheduler, a task's dataset
    assert "adapter.criterion 'biggest'" in errors("model=tiny", "adapter=sparse", "adapter.criterion=biggest")[0]
    assert "adapter.peft_config" in errors("model=tiny", "adapter=peft")[0]
    assert "objective.lr_scheduler 'warm'" in errors("model=tiny", "objective.lr_scheduler=warm")[0]
    assert "task.dataset 'basic_arith'" in errors("model=tiny", "task.dataset=basic_arith")[0]
    # a hub id offline that is not in the local cache (run.py sets HF_HUB_OFFLINE=1 by default)
    found = errors("model=hf", "model.name_or_path=nobody-xyz/no-model")
    assert "model.name_or_path 'nobody-xyz/no-model'" in found[0] and "HF_HUB_OFFLINE" in found[0]
    assert errors("model=hf", "model.name_or_path=./not/here")[0].endswith("does not exist")


def test_jsonl_too_short_and_missing_fields(tmp_path):
    short = tmp_path / "short.jsonl"
    short.write_text("".join(f'{{"prompt": "{i}+1", "answer": "{i + 1}"}}\n' for i in range(5)))
    found = errors("model=tiny", "task=jsonl", f"task.path={short}")
    assert "at least n_train + n_test = 96 rows (the file has 5)" in found[0]
    assert errors("model=tiny", "task=jsonl", f"task.path={short}", "task.n_train=3", "task.n_test=2") == []
    lacking = tmp_path / "lacking.jsonl"
    lacking.write_text('{"prompt": "1+1"}\n')
    assert f"{lacking}:1 lacks prompt or answer" in errors("model=tiny", "task=jsonl", f"task.path={lacking}")[0]
    assert "task.path" in errors("model=tiny", "task=jsonl")[0]  # the mandatory ??? left unset


def test_valid_configs_pass():
    assert errors("model=tiny") == []
    assert errors("model=tiny", "adapter=sparse", "objective=rlvr", "store_dtype=bfloat16") == []
    assert errors("sweeps=demo", multirun=True) == []


def test_unknown_key_is_one_line():
    found = errors("model=tiny", "objective.stepz=3")
    assert len(found) == 1 and "objective.stepz" in found[0]


def test_sweep_expansion_matches_hydra():
    """Command-line comma lists crossed with the study file's hydra.sweeper.params, the command line winning."""
    jobs = job_overrides(["sweeps=demo"], True, CONF)
    assert len(jobs) == 8  # 4 adapters x 2 objectives x 1 seed
    assert {j for job in jobs for j in job if j.startswith("adapter=")} == {
        "adapter=full", "adapter=lora", "adapter=milora", "adapter=sparse"}
    jobs = job_overrides(["sweeps=demo", "objective=sft", "seed=0,1"], True, CONF)
    assert len(jobs) == 8 and all("objective=sft" in j for j in jobs)  # 4 adapters x 1 objective x 2 seeds
    assert job_overrides(["adapter=full,lora"], False, CONF) == [["adapter=full,lora"]]  # no -m: one job
    # the study's own sweep params are expanded: only its non_principal jobs conflict with this alpha
    assert errors("sweeps=sparse_masks", "adapter.alpha=0.99", multirun=True) == [
        "error: bad adapter.density 0.05; valid: <= 1 - adapter.alpha = 0.01 for criterion non_principal "
        "(the mask lies outside the principal share)"]
    assert errors("sweeps=sparse_masks", "adapter=sparse", "adapter.alpha=0.99", "adapter.criterion=random",
                  multirun=True) == []


# --- a plug-in cannot lie: every adapter setting checked against the adapter and the model (issue 20) --------


@pytest.mark.integration
def test_a_typo_in_an_adapter_setting_exits_2_before_anything_loads(tmp_path):
    """``droput`` would otherwise train with the default dropout."""
    r = run_cli(*TINY, "adapter=lora", "+adapter.droput=0.1", out=tmp_path)
    assert r.returncode == 2, r.stderr[-2000:]
    assert r.stderr.strip().splitlines()[-1] == (
        "error: unknown setting of adapter 'lora' 'droput' (did you mean 'dropout'?); valid: alpha, dropout, init, "
        "kind, lr, name, r, target_modules")
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("overrides,line", [
    # an option the peft config class does not have (a TypeError deep in Hydra's instantiate before)
    (["adapter=peft", "+adapter.peft_config={_target_:peft.LoHaConfig,r:4,alpah:8}"],
     "error: unknown option of LoHaConfig (adapter.peft_config) 'alpah' (did you mean 'alpha'?); valid: alpha, "),
    (["adapter=peft", "+adapter.peft_config={_target_:peft.NopeConfig}"],
     "error: bad adapter.peft_config._target_ 'peft.NopeConfig'; valid: an importable peft config class"),
    # target modules matched against the model's module names (peft failed after the base had loaded, and
    # dropped a list entry that matched nothing)
    (["adapter=lora", "adapter.target_modules=[qproj,v_proj]"],
     "error: bad adapter.target_modules 'qproj'; valid: a name matching this model's modules, e.g. down_proj, "
     "gate_proj, k_proj, lm_head, o_proj, q_proj, up_proj, v_proj"),
    (["adapter=peft", "+adapter.peft_config={_target_:peft.LoHaConfig,r:4,target_modules:[attn]}"],
     "error: bad adapter.peft_config.target_modules 'attn'; valid: a name matching this model's modules"),
    (["adapter=sparse", "adapter.target_modules=[q_proj,q]"],
     "error: bad adapter.target_modules 'q'; valid: last name parts of this model's linear layers: down_proj, "),
    # an init peft does not know (refused only when the adapter was built), read from peft's own type
    (["adapter=lora", "adapter.init=bogus"], "error: bad adapter.init 'bogus'; valid: true | false | gaussian"),
    (["adapter=pissa", "adapter.init=gaussian"], "error: bad adapter.init 'gaussian'; valid: pissa | pissa_niter_<n>"),
    (["adapter=milora", "+adapter.init=true"], "error: unknown setting of adapter 'milora' 'init'"),
    # peft's own check of its config, one line
    (["adapter=peft", "+adapter.peft_config={_target_:peft.OFTConfig,r:4,oft_block_size:4}"],
     "error: adapter: peft refused the config of adapter 'peft': "),
])
def test_adapter_settings_checked_against_peft_and_the_model(overrides, line):
    found = errors("model=tiny", *overrides)
    assert len(found) == 1 and found[0].startswith(line), found


def test_valid_adapter_settings_pass():
    for overrides in (["adapter=lora", "adapter.target_modules=[q_proj,v_proj]"], ["adapter=pissa",
                      "adapter.init=pissa_niter_4"], ["adapter=lora", "adapter.init=olora"], ["adapter=oft"],
                      ["adapter=fourierft"], ["adapter=sparse", "adapter.target_modules=[q_proj]"]):
        assert errors("model=tiny", *overrides) == [], overrides


# --- one schema: types and defaults from the config tree itself -------------------------------------------------


def test_every_rule_names_a_key_the_config_tree_defines():
    """A key renamed in a YAML (or a rule with a typo) would silently lose its check: it fails here instead."""
    from harness.core.config import key_types
    from harness.launch.validate import RULES

    keys = key_types()
    orphans = [k for k, _, _ in RULES
               if not (k in keys or (k.endswith(".*") and any(x.startswith(k[:-1]) for x in keys)))]
    assert orphans == []


def test_a_renamed_key_is_caught(monkeypatch):
    """The check above is not vacuous: with passk.n_prompts renamed in the tree, its rule is an orphan."""
    from harness.core import config

    renamed = {("passk.prompts" if k == "passk.n_prompts" else k): v for k, v in config.key_types().items()}
    monkeypatch.setattr(config, "key_types", lambda: renamed)
    with pytest.raises(AssertionError):
        test_every_rule_names_a_key_the_config_tree_defines()


def test_types_come_from_the_defaults():
    """A key without a row in RULES is checked against its default's type, with the same one-line error."""
    (line,) = errors("model=tiny", "save_model=yes")
    assert line == "error: bad save_model 'yes'; valid: true | false"
    (line,) = errors("model=tiny", "eval.until=stop")  # a list in the YAML
    assert "eval.until 'stop'" in line
    assert errors("model=tiny", "passk.temperature=1") == []  # an integer where the default is a float is a number


def test_cells_that_run_objectives_leaves_out_are_not_checked():
    """A grid cell that run_objectives skips trains nothing, so its settings do not stop the sweep (the claims
    study's gkd column has a teacher only where an arm runs gkd); a cell that runs is checked, and so is a bad
    run_objectives itself."""
    grid = ["model=tiny", "logger=none", "objective=sft,gkd"]
    assert errors(*grid, "run_objectives=[sft]", multirun=True) == []
    bad = errors(*grid, "run_objectives=[gkd]", multirun=True)
    assert bad and "objective.teacher" in bad[0]
    assert "run_objectives ['gdk']" in errors(*grid, "run_objectives=[gdk]", multirun=True)[0]
