"""Final-answer extraction and exact checking. Scores are 0 or 1: an answer that merely *contains* the
gold string gets nothing (reasoning-gym's own ``score_answer`` gives partial credit for that)."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

NUMBER = re.compile(r"[-+−]?\d[\d,]*(?:\.\d+)?|[-+−]?\.\d+")


def extract_answer(completion: str) -> str:
    """The final-answer segment of a completion.

    ``\\boxed{..}`` wins, then the text after the last ``####`` (GSM8K style), else the first non-empty line:
    a model that answers and then rambles on is judged on its answer, not on the ramble.
    """
    boxed = re.findall(r"\\boxed\{([^{}]*)\}", completion)
    if boxed:
        return boxed[-1].strip()
    if "####" in completion:
        completion = completion.rsplit("####", 1)[1]
    for line in completion.splitlines():
        if line.strip():
            return line.strip()
    return ""


def _number(text: str) -> Decimal | None:
    try:
        return Decimal(text.replace(",", "").replace("−", "-").lstrip("+"))
    except InvalidOperation:
        return None


def score(completion: str, gold: str) -> float:
    """1.0 iff the extracted final answer equals ``gold`` (numerically for numbers, else via math-verify)."""
    segment = extract_answer(completion)
    if not segment:
        return 0.0
    gold_num = _number(gold.strip())
    if gold_num is not None:
        numbers = NUMBER.findall(segment)
        if not numbers:
            return 0.0
        got = _number(numbers[-1])
        return float(got is not None and got == gold_num)
    if segment.strip() == gold.strip():
        return 1.0
    from math_verify import parse, verify

    try:
        return float(bool(verify(parse(gold), parse(segment))))
    except Exception:  # math-verify raises on unparsable input: treat as wrong
        return 0.0
