"""Verdicts on the field's claims from a sweep's measured artifacts (issue 13).

Each claim (:mod:`.path_not_taken` P1–P6, :mod:`.lora_regret` L1, :mod:`.subnetworks` S1, :mod:`.essay` E1,
:mod:`.beyond_base` Y1, :mod:`.razor` R1, :mod:`.unlearnability` U1–U5, :mod:`.surgery`, :mod:`.spurious`,
:mod:`.retaining`, :mod:`.distillation`, :mod:`.prorl`, :mod:`.peft_rl` PE1–PE3) is a :class:`Claim` in the registry
with its estimate (from the run artifacts, runs chosen through :class:`harness.analysis.sweep.Sweep`) and its rule
(:mod:`.base`). ``python -m harness.claims <sweep>`` writes ``claims.csv``, ``claims.md`` and the forest
plot; the report's "Claims" section shows the same table. Analysis side: no training module is imported.
"""

from harness.claims.base import CLAIMS, CONTRADICTED, INCONCLUSIVE, SUPPORTED, Claim, Part, Result, ordered
from harness.claims.table import claims_frame, judge_all, write_claims

__all__ = ["CLAIMS", "CONTRADICTED", "INCONCLUSIVE", "SUPPORTED", "Claim", "Part", "Result", "claims_frame",
           "judge_all", "ordered", "write_claims"]
