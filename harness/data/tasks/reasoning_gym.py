"""Task kind ``reasoning_gym``: a procedural generator from reasoning-gym as a weighted mix of difficulty
components (``mix``), each a set of generator settings on top of ``common``."""

from __future__ import annotations

from collections.abc import Iterator

from omegaconf import DictConfig, OmegaConf

from harness.core.registry import BadValue
from harness.data.tasks import Augmented, Example, TaskKind, prompt_id, register

# The question styles of generators that have one (reasoning-gym's basic_arithmetic: "Calculate 12 + 34." or one
# of "What is / Solve / Compute / Evaluate: ..."): a rephrasing asks the generator for the other style.
OTHER_STYLE = {"simple": "natural", "natural": "simple"}


def _components(cfg: DictConfig) -> Iterator[tuple[str, dict, int]]:
    """(group, generator settings, how many distinct prompts it contributes) per ``mix`` component."""
    common = cfg.get("common")  # optional: settings every component shares
    common = OmegaConf.to_container(common, resolve=True) if common is not None else {}
    total = cfg.n_train + cfg.n_test
    weights = [float(c.get("weight", 1.0)) for c in cfg.mix]
    for i, comp in enumerate(cfg.mix):
        comp = OmegaConf.to_container(comp, resolve=True)
        group = comp.pop("group", f"c{i}")
        comp.pop("weight", None)
        # Cumulative targets: rounding never loses a prompt, and a component with fewer distinct prompts than its
        # share (1-digit sums) passes the rest on to the next.
        yield group, {**common, **comp, "seed": cfg.seed + i}, round(total * sum(weights[: i + 1]) / sum(weights))


def _items(cfg: DictConfig) -> Iterator[tuple[str, dict, int, dict, str]]:
    """Every kept generator item: (group, its settings, oversampled size, the item, its prompt)."""
    import reasoning_gym

    seen: set[str] = set()
    for group, settings, upto in _components(cfg):
        want = upto - len(seen)
        size = 4 * want + 16  # oversample: duplicates are dropped
        got = 0
        for item in reasoning_gym.create_dataset(cfg.dataset, size=size, **settings):
            if got >= want:
                break
            prompt = cfg.prompt_template.format(question=item["question"])
            if prompt in seen:
                continue
            seen.add(prompt)
            got += 1
            yield group, settings, size, item, prompt


def decompose(expression: str) -> list[tuple[str, int]]:
    """Self-contained subproblems of a chain of integer sums and differences ("a + b - c"), each with its
    answer: with three terms or more the running chain ("a + b", then "(a + b) - c" with the value written out);
    with two terms of two digits or more the place-value split (4821 + 3975: "4800 + 3900", "21 + 75", and
    their sum). Anything else (products, parentheses, one-digit pairs): none."""
    tokens = expression.split()
    if len(tokens) < 3 or len(tokens) % 2 == 0 or any(op not in "+-" for op in tokens[1::2]):
        return []
    try:
        terms = [int(t) for t in tokens[0::2]]
    except ValueError:
        return []
    ops = tokens[1::2]

    def apply(a: int, op: str, b: int) -> int:
        return a + b if op == "+" else a - b

    if len(terms) >= 3:
        out, value = [], terms[0]
        for op, b in zip(ops, terms[1:]):
            out.append((f"{value} {op} {b}", apply(value, op, b)))
            value = apply(value, op, b)
        return out
    a, b = terms
    width = len(str(max(abs(a), abs(b))))
    if width < 2:
        return []
    h = 10 ** (width // 2)

    def split(x: int) -> tuple[int, int]:
        low = (abs(x) % h) * (1 if x >= 0 else -1)
        return x - low, low

    (a_hi, a_lo), (b_hi, b_lo) = split(a), split(b)
    hi, lo = apply(a_hi, ops[0], b_hi), apply(a_lo, ops[0], b_lo)
    return [(f"{a_hi} {ops[0]} {b_hi}", hi), (f"{a_lo} {ops[0]} {b_lo}", lo), (f"{hi} + {lo}", hi + lo)]


@register("reasoning_gym")
class ReasoningGym(TaskKind):
    @classmethod
    def examples(cls, cfg: DictConfig) -> list[Example]:
        out = []
        for group, _, _, item, prompt in _items(cfg):
            answer = str(item["answer"])
            out.append(Example(prompt_id(cfg.name, prompt), prompt, answer, " " + answer, group))
        return out

    @classmethod
    def augmentations(cls, cfg: DictConfig, examples: list[Example]) -> dict[str, list[Augmented]]:
        """Rephrasings from the generator itself (the same item in its other question style, where the generator
        has styles) and decompositions of the generator's expression (:func:`decompose`), written in the item's
        own question with the expression replaced; no network call, no model."""
        import reasoning_gym
        from reasoning_gym.factory import DATASETS

        want = {e.id for e in examples}
        styles = "format_style" in DATASETS[cfg.dataset][1].__dataclass_fields__
        other: dict[tuple, object] = {}
        out: dict[str, list[Augmented]] = {}
        for _, settings, size, item, prompt in _items(cfg):
            pid = prompt_id(cfg.name, prompt)
            if pid not in want:
                continue
            aug = []
            if styles:
                style = OTHER_STYLE.get(settings.get("format_style", "simple"), "natural")
                key = (settings["seed"], size)
                if key not in other:  # same seed and settings: item i has the same expression in the other style
                    other[key] = reasoning_gym.create_dataset(cfg.dataset, size=size,
                                                              **{**settings, "format_style": style})
                twin = other[key][item["metadata"]["source_index"]]
                if twin["answer"] == item["answer"] and twin["question"] != item["question"]:
                    aug.append(Augmented("rephrase", cfg.prompt_template.format(question=twin["question"]),
                                         str(twin["answer"]), " " + str(twin["answer"])))
            expression = str(item["metadata"].get("expression", ""))
            if expression and expression in item["question"]:
                for sub, answer in decompose(expression):
                    question = item["question"].replace(expression, sub)
                    aug.append(Augmented("decompose", cfg.prompt_template.format(question=question), str(answer),
                                         f" {answer}"))
            out[pid] = aug
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
