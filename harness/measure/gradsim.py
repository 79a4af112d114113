"""Cross-prompt gradient similarity (*The Unlearnability Phenomenon in RLVR*, §4), and the group test.

Per prompt, the gradient of the mean token log-likelihood of its correct rollouts *sampled during training*
(``correct_rollouts.jsonl``, kept by the GRPO reward function) — the GRPO gradient of that prompt up to a
positive factor: with the default ``dapo`` loss every correct rollout of a group carries the same positive
advantage, and the loss is a mean over tokens — compressed to ``d`` numbers. It is taken at the base weights by
default (``passrate.grad_sim.at``, see :func:`harness.measure.passrate.passrates_for_run` for why).

Groups (easy / learnable / unlearnable) are compared with :func:`permutation_test` on the prompt x prompt
similarity matrix: the statistic is the difference of the groups' mean similarities, its null distribution
comes from permuting the group labels, p = (1 + #{|T*| ≥ |T|}) / (1 + B).

The compression is a count sketch (feature hashing): coordinate ``i`` of the flat gradient goes, with a
random sign ``s(i)``, into bucket ``h(i)`` of ``d``. Hashes and signs are drawn per parameter from a generator
seeded by (seed, parameter name), so the projection is fixed across processes and runs and no P x d matrix
ever exists (memory: one int32 code per parameter entry, time: O(P) per prompt).

Cosine bound (stated in docs/metrics.md, checked in tests/measure/test_unlearn_gradsim.py): for fixed x, y,
E<Sx, Sy> = <x, y> and Var<Sx, Sy> = (‖x‖²‖y‖² + <x,y>² − 2Σ x_i² y_i²)/d ≤ 2‖x‖²‖y‖²/d. By Chebyshev on
<Sx, Sy>, ‖Sx‖², ‖Sy‖² (union bound), for unit x, y and 0 < ε < 1:

    P( |cos(Sx, Sy) − cos(x, y)| > 2ε/(1−ε) ) ≤ 6/(d ε²)

Chebyshev is loose; for dense vectors (a gradient spreads over millions of entries) the sketched inner products
are close to Gaussian and the cosine error has standard deviation ≈ (1 − cos²)/√d ≤ 1/√d (0.016 at
d = 4096), as for a Gaussian projection: differences of mean similarities well above that are not sketch noise.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch


def cosine_error_bound(dim: int, eps: float) -> tuple[float, float]:
    """(error, failure probability): |cos(Sx,Sy) − cos(x,y)| ≤ error except with at most that probability."""
    return 2 * eps / (1 - eps), min(1.0, 6.0 / (dim * eps**2))


def name_seed(seed: int, name: str) -> int:
    """A generator seed from a seed and a name, the same in every process (unlike ``hash``)."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:7], "little")


class CountSketch:
    """A fixed count sketch R^P -> R^d over named blocks (parameters), never materialising a P x d matrix."""

    def __init__(self, dim: int, seed: int = 0):
        if dim < 1 or dim > 2**30:
            raise ValueError(f"sketch dim must be in [1, 2^30], got {dim}")
        self.dim = dim
        self.seed = seed
        self._codes: dict[str, torch.Tensor] = {}

    def _code(self, name: str, numel: int) -> torch.Tensor:
        """int32 per entry: 2*bucket + (sign bit). Drawn once per block from a (seed, name)-seeded generator."""
        code = self._codes.get(name)
        if code is None or code.numel() != numel:
            gen = torch.Generator().manual_seed(name_seed(self.seed, name))
            code = torch.randint(0, 2 * self.dim, (numel,), generator=gen, dtype=torch.int64).to(torch.int32)
            self._codes[name] = code
        return code

    def project(self, blocks: Mapping[str, torch.Tensor] | Iterable[tuple[str, torch.Tensor]]) -> torch.Tensor:
        """Sketch of the concatenation of the named blocks (float64, length d)."""
        out = torch.zeros(self.dim, dtype=torch.float64)
        items = blocks.items() if isinstance(blocks, Mapping) else blocks
        for name, x in items:
            flat = x.detach().reshape(-1).to("cpu", torch.float32)
            # one pass: bin 2b collects the entries of bucket b with sign +1, bin 2b+1 those with sign -1
            bins = torch.bincount(self._code(name, flat.numel()), weights=flat, minlength=2 * self.dim)
            out += bins[0::2].double() - bins[1::2].double()
        return out


def cosine_matrix(sketches: np.ndarray) -> np.ndarray:
    """Pairwise cosine similarity of the rows."""
    s = np.asarray(sketches, dtype=np.float64)
    norms = np.linalg.norm(s, axis=1, keepdims=True)
    unit = s / np.where(norms > 0, norms, 1.0)
    return unit @ unit.T


def similarity_to_rest(sketches: np.ndarray) -> np.ndarray:
    """Per row, the mean cosine similarity to every other row (NaN with fewer than two rows)."""
    n = len(sketches)
    if n < 2:
        return np.full(n, np.nan)
    c = cosine_matrix(sketches)
    return (c.sum(axis=1) - np.diag(c)) / (n - 1)


def mean_to_rest(sim: np.ndarray) -> np.ndarray:
    """Per prompt, the mean of its row of a similarity matrix over the other prompts, ignoring NaN entries
    (pairs never measured together); NaN for a prompt with no measured pair."""
    s = np.array(sim, dtype=np.float64)
    np.fill_diagonal(s, np.nan)
    ok = np.isfinite(s)
    n = ok.sum(axis=1)
    return np.where(n > 0, np.where(ok, s, 0.0).sum(axis=1) / np.maximum(n, 1), np.nan)


def pooled_cosine_matrix(runs: Iterable[tuple[Sequence[str], np.ndarray]]) -> tuple[list[str], np.ndarray,
                                                                                   np.ndarray]:
    """One prompt x prompt cosine matrix from several runs (seeds) that each sketched some prompts: entry (i, j)
    is the mean over the runs that sketched both i and j (NaN if none did). Returns (ids, matrix, number of
    runs per entry)."""
    runs = [([str(i) for i in ids], np.asarray(sk)) for ids, sk in runs]
    ids = sorted({i for r_ids, _ in runs for i in r_ids})
    pos = {p: k for k, p in enumerate(ids)}
    total = np.zeros((len(ids), len(ids)))
    count = np.zeros((len(ids), len(ids)), dtype=int)
    for r_ids, sk in runs:
        if len(r_ids) == 0:
            continue
        idx = np.array([pos[p] for p in r_ids])
        total[np.ix_(idx, idx)] += cosine_matrix(sk)
        count[np.ix_(idx, idx)] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return ids, mean, count


@dataclass(frozen=True)
class PermutationResult:
    statistic: float   # observed difference of group mean similarities, group a minus group b
    p: float           # two-sided permutation p-value, (1 + #{|T*| >= |T|}) / (1 + n_perm)
    n_a: int
    n_b: int
    n_perm: int
    null_sd: float     # sd of the permutation distribution (the scale a difference is read against)


def _group_within(sim0: np.ndarray, ok: np.ndarray, member: np.ndarray) -> np.ndarray:
    """Mean off-diagonal similarity inside the group marked by each row of ``member`` (n_perm x n, 0/1)."""
    tot = np.einsum("pi,ij,pj->p", member, sim0, member)
    cnt = np.einsum("pi,ij,pj->p", member, ok, member)
    with np.errstate(invalid="ignore", divide="ignore"):
        return tot / cnt


def permutation_test(sim: np.ndarray, labels: Sequence[str], a: str, b: str, n_perm: int = 10_000,
                     seed: int = 0, statistic: str = "to_rest") -> PermutationResult:
    """Two-sided permutation test of "group ``a`` and group ``b`` have the same mean similarity", over the
    prompt x prompt similarity matrix ``sim`` (symmetric; NaN = pair not measured; diagonal ignored).

    ``statistic``: ``to_rest`` — a prompt's score is its mean similarity to every other prompt of the matrix
    (the paper's measure), T = mean score of a − mean score of b; ``within`` — T = mean similarity among a's
    prompts − among b's (recomputed from the matrix for every permutation). The labels of the prompts of a and
    b are permuted (other prompts keep theirs and stay in the matrix). Each prompt's score shares pairwise terms
    with the others', so the scores are not independent observations; the permutation null needs only that the
    labels are exchangeable under the hypothesis, not that the scores are independent.
    """
    if statistic not in ("to_rest", "within"):
        raise ValueError(f"statistic must be 'to_rest' or 'within', got {statistic!r}")
    labels = np.asarray(labels, dtype=object)
    sim = np.asarray(sim, dtype=np.float64)
    ia, ib = np.flatnonzero(labels == a), np.flatnonzero(labels == b)
    min_n = 2 if statistic == "within" else 1
    if len(ia) < min_n or len(ib) < min_n:
        return PermutationResult(float("nan"), float("nan"), len(ia), len(ib), 0, float("nan"))
    pool = np.concatenate([ia, ib])
    rng = np.random.default_rng(seed)
    # row 0 is the observed labelling; rows 1.. are permutations of the pooled prompts
    perms = np.vstack([np.arange(len(pool)), rng.permuted(np.tile(np.arange(len(pool)), (n_perm, 1)), axis=1)])
    if statistic == "to_rest":
        score = mean_to_rest(sim)[pool]
        vals = score[perms]
        t = np.nanmean(vals[:, : len(ia)], axis=1) - np.nanmean(vals[:, len(ia):], axis=1)
    else:
        sub = sim[np.ix_(pool, pool)].copy()
        np.fill_diagonal(sub, np.nan)
        ok = np.isfinite(sub).astype(np.float64)
        sub0 = np.where(ok > 0, sub, 0.0)
        member_a = np.zeros(perms.shape, dtype=np.float64)
        member_a[np.arange(len(perms))[:, None], perms[:, : len(ia)]] = 1.0
        t = _group_within(sub0, ok, member_a) - _group_within(sub0, ok, 1.0 - member_a)
    obs, null = t[0], t[1:]
    # ties within float rounding count as "as extreme" (the +1 and the tolerance keep p > 0 and the test exact)
    extreme = np.sum(np.abs(null) >= abs(obs) - 1e-12 * max(1.0, abs(obs)))
    return PermutationResult(float(obs), float((1 + extreme) / (1 + n_perm)), len(ia), len(ib), n_perm,
                             float(np.nanstd(null)))


# --- gradients -------------------------------------------------------------------------------------------


def gradient_params(model: torch.nn.Module, which: str = "matrices") -> list[str]:
    """Parameters whose gradient is sketched: ``matrices`` (the analyzed 2-D weights, as in geometry) or ``all``."""
    from harness.core.weights import analyzed_weights

    named = dict(model.named_parameters())
    if which == "all":
        return list(named)
    if which != "matrices":
        raise ValueError(f"grad_sim.params must be 'matrices' or 'all', got {which!r}")
    names = [n for n in analyzed_weights({k: v for k, v in named.items()}) if n in named]
    if not names:
        raise ValueError("no analyzed 2-D weight matrices found; use passrate.grad_sim.params=all")
    return names


def _rollout_ids(tok, prompt: str, rollout: Mapping) -> tuple[list[int], list[int]]:
    prompt_ids = tok(prompt)["input_ids"]
    ids = rollout.get("ids")
    if ids is None:  # a text (e.g. from a training-time correct_rollouts.jsonl): tokenize it
        ids = tok(rollout["text"], add_special_tokens=False)["input_ids"]
        if rollout.get("eos") and tok.eos_token_id is not None:
            ids = ids + [tok.eos_token_id]
    return list(prompt_ids), list(ids)


def loglik_gradient_sketch(model, tok, prompt: str, rollouts: list[Mapping], names: list[str],
                           sketch: CountSketch) -> tuple[np.ndarray, float, int]:
    """Sketch of ∇ (mean token log-likelihood of ``rollouts`` given ``prompt``); also the exact gradient norm
    and the number of completion tokens. One forward/backward over the rollouts, right-padded."""
    device = next(model.parameters()).device
    pairs = [_rollout_ids(tok, prompt, r) for r in rollouts]
    pairs = [(p, c) for p, c in pairs if c]
    if not pairs:
        raise ValueError("no rollout with completion tokens")
    width = max(len(p) + len(c) for p, c in pairs)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    input_ids = torch.full((len(pairs), width), pad, dtype=torch.long)
    attn = torch.zeros((len(pairs), width), dtype=torch.long)
    target = torch.full((len(pairs), width), -100, dtype=torch.long)
    for i, (p, c) in enumerate(pairs):
        seq = p + c
        input_ids[i, : len(seq)] = torch.tensor(seq)
        attn[i, : len(seq)] = 1
        target[i, len(p) : len(seq)] = torch.tensor(c)
    input_ids, attn, target = input_ids.to(device), attn.to(device), target.to(device)

    params = dict(model.named_parameters())
    keep = set(names)
    flags = {n: p.requires_grad for n, p in params.items()}
    for n, p in params.items():
        p.requires_grad_(n in keep)
        p.grad = None
    try:
        with torch.enable_grad():
            logits = model(input_ids=input_ids, attention_mask=attn).logits[:, :-1].float()
            labels = target[:, 1:]
            mask = labels != -100
            logp = torch.log_softmax(logits, dim=-1).gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
            n_tokens = int(mask.sum())
            (logp * mask).sum().div(n_tokens).backward()
        grads = [(n, params[n].grad) for n in names if params[n].grad is not None]
        norm = math.sqrt(sum(float(g.double().pow(2).sum()) for _, g in grads))
        out = sketch.project(grads).numpy()
    finally:
        for n, p in params.items():
            p.grad = None
            p.requires_grad_(flags[n])
    return out, norm, n_tokens


# --- group statistics ------------------------------------------------------------------------------------


def bootstrap_ci(values: np.ndarray, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean (resampling prompts)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return float("nan"), float("nan")
    if len(v) == 1:
        return float(v[0]), float(v[0])
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(n_boot, len(v)))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def mann_whitney(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided Mann–Whitney U p-value (NaN when a group has fewer than two values)."""
    from scipy.stats import mannwhitneyu

    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    return float(mannwhitneyu(a, b, alternative="two-sided").pvalue)
