"""Task kind ``reasoning_gym``: a procedural generator from reasoning-gym as a weighted mix of difficulty
components (``mix``), each a set of generator settings on top of ``common``."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from harness.core.registry import BadValue
from harness.data.tasks import Example, TaskKind, prompt_id, register


@register("reasoning_gym")
class ReasoningGym(TaskKind):
    @classmethod
    def examples(cls, cfg: DictConfig) -> list[Example]:
        import reasoning_gym

        template = cfg.prompt_template
        common = cfg.get("common")  # optional: settings every component shares
        common = OmegaConf.to_container(common, resolve=True) if common is not None else {}
        total = cfg.n_train + cfg.n_test
        weights = [float(c.get("weight", 1.0)) for c in cfg.mix]
        seen: set[str] = set()
        out: list[Example] = []
        for i, comp in enumerate(cfg.mix):
            comp = OmegaConf.to_container(comp, resolve=True)
            group = comp.pop("group", f"c{i}")
            comp.pop("weight", None)
            # Cumulative targets: rounding never loses a prompt, and a component with fewer distinct prompts
            # than its share (1-digit sums) passes the rest on to the next.
            want = round(total * sum(weights[: i + 1]) / sum(weights)) - len(out)
            # Oversample: duplicates are dropped.
            ds = reasoning_gym.create_dataset(cfg.dataset, size=4 * want + 16, seed=cfg.seed + i, **common, **comp)
            got = 0
            for item in ds:
                if got >= want:
                    break
                prompt = template.format(question=item["question"])
                if prompt in seen:
                    continue
                seen.add(prompt)
                answer = str(item["answer"])
                out.append(Example(prompt_id(cfg.name, prompt), prompt, answer, " " + answer, group))
                got += 1
        return out

    @classmethod
    def check(cls, cfg: DictConfig, key: str = "task") -> None:
        from reasoning_gym.factory import DATASETS

        if cfg.get("dataset") not in DATASETS:
            raise BadValue(f"{key}.dataset", cfg.get("dataset"), "a reasoning-gym dataset, e.g. basic_arithmetic")
        mix = cfg.get("mix")
        if not mix:
            raise BadValue(f"{key}.mix", mix, "a non-empty list of generator settings")
        for i, comp in enumerate(mix):
            w = comp.get("weight", 1.0)
            if isinstance(w, bool) or not isinstance(w, int | float) or w <= 0:
                raise BadValue(f"{key}.mix[{i}].weight", w, "a number > 0")
