"""*RL's Razor* (arXiv 2509.04259): R1, forgetting grows with the forward KL(base ‖ tuned); RLVR forgets less."""

from __future__ import annotations

from scipy import stats as sps

from harness.claims.base import Claim, Part, register
from harness.claims.data import ClaimData, flat, full_ref, over_seeds

SOURCE = "RL's Razor (arXiv 2509.04259)"
MIN_RUNS = 3  # a rank correlation over fewer runs of one seed says nothing


def r1(data: ClaimData) -> list[Part]:
    t = data.table
    if "main_task" in t:  # forgetting is read on the study's task; runs trained on other tasks move other skills
        t = t[t["main_task"]]
    cols = {"kl_forward", "change_ood"}
    rhos, runs = [], []
    if cols <= set(t.columns):
        ok = t[t["kl_forward"].notna() & t["change_ood"].notna()]
        for _, g in ok.groupby("seed"):  # one correlation per seed, across that seed's conditions
            if len(g) >= MIN_RUNS:
                rhos.append(float(sps.spearmanr(g["kl_forward"], -g["change_ood"]).statistic))
                runs += list(g["run"])
    needs = None if rhos else ("kl.json and eval.json OOD tasks" if not cols <= set(t.columns)
                               else f"≥ {MIN_RUNS} runs per seed with kl.json and OOD accuracy")
    corr = over_seeds("Spearman ρ(forward KL, OOD drop) per seed", rhos, runs, 0.0, "above", needs)
    pairs = data.objective_pairs(full_ref)
    vals, used = [], []
    for a, b in pairs:
        ga, gb = data.value(a, "gain_id"), data.value(b, "gain_id")
        if ga > 0 and gb > 0:  # forgetting per unit of in-distribution gain is defined for positive gains only
            vals.append(-data.value(a, "change_ood") / ga - (-data.value(b, "change_ood") / gb))
            used += [a, b]
    why = None if vals else ("full FT under sft and rlvr, same seeds" if not pairs
                             else "pairs whose runs both gained in-distribution (gain_id > 0)")
    rel = over_seeds("OOD drop per unit ID gain, RLVR − SFT", vals, used or flat(pairs), 0.0, "below", why,
                     f"{len(vals)}/{len(pairs)} pairs with positive gains" if pairs else "")
    return [corr, rel]


register(Claim(
    "R1", "Forgetting grows with forward KL(base ‖ tuned) on the task; RLVR forgets less than SFT at equal gain",
    SOURCE,
    "per seed Spearman ρ over runs of forward KL vs OOD accuracy drop; OOD drop per unit ID gain, RLVR − SFT",
    "every done run with kl.json (per seed); full FT Sweep.pairs('objective') for the second part",
    "ρ 0, claim above; difference 0, claim below",
    "forgetting is predicted by forward KL on the new task; RL forgets less than SFT at matched new-task accuracy",
    r1, order=110))
