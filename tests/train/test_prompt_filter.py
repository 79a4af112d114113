"""The prompt filter keeps the training prompts the base solves sometimes, on the real SmolLM2 (raw, no
warm-up, two-shot prompts: on 1-digit sums some prompts are never solved in 6 samples and others sometimes)."""

from __future__ import annotations

import pytest

from harness.core.store import cache_root
from harness.data.tasks import build_task
from harness.train.prompt_filter import base_pass_rates, filter_task
from tests.conftest import compose

SETTINGS = ("model=smollm2-135m", "model.warmup.enabled=false", "task.n_train=12", "task.n_test=4",
            "task.mix=[{group:d1,min_digits:1,max_digits:1}]", "prompt_filter.enabled=true", "prompt_filter.k=6",
            "prompt_filter.max_new_tokens=6",
            "task.prompt_template='Calculate 2 + 5.\nAnswer: 7\nCalculate 4 + 3.\nAnswer: 7\n{question}\nAnswer:'")


@pytest.fixture(scope="module")
def setup(harness_cache):
    from harness.train.warmup import resolve_base

    cfg = compose(*SETTINGS)
    return cfg, build_task(cfg.task), resolve_base(cfg.model)


@pytest.mark.integration
def test_keeps_exactly_the_prompts_strictly_between_the_bounds(setup):
    cfg, task, base = setup
    rates = base_pass_rates(cfg, task, base, "cpu")
    assert set(rates) == {e.id for e in task.train}
    assert all(r * 6 == round(r * 6) for r in rates.values())  # k = 6 samples each
    filtered, info = filter_task(cfg, task, base, "cpu")
    kept = {e.id for e in filtered.train}
    assert kept == {p for p, r in rates.items() if 0 < r < 1}
    assert 0 < info["kept"] < info["of"] == 12  # the raw model solves some prompts sometimes, others never
    assert info["never"] + info["always"] + info["kept"] == 12
    assert filtered.test == task.test  # the held-out split is never filtered


@pytest.mark.integration
def test_pass_rates_are_cached_by_weights(setup):
    cfg, task, base = setup
    base_pass_rates(cfg, task, base, "cpu")
    files = list((cache_root() / "prompt_filter").glob("*.json"))
    assert len(files) == 1
    base_pass_rates(cfg, task, base, "cpu")  # a second call reads the same entry
    assert list((cache_root() / "prompt_filter").glob("*.json")) == files


@pytest.mark.integration
def test_no_prompt_in_bounds_is_a_clear_error(setup):
    cfg, task, base = setup
    cfg = compose(*SETTINGS, "prompt_filter.lo=0.99")
    with pytest.raises(ValueError, match="prompt_filter kept no training prompt"):
        filter_task(cfg, task, base, "cpu")
