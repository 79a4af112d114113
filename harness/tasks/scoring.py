"""Final-answer extraction and exact checking: the one scorer behind the RLVR reward, pass rates and lm-eval.

Scores are 0 or 1. An answer that merely *contains* the gold string gets nothing (reasoning-gym's own
``score_answer`` gives partial credit for that), and so does a hedge: two different numbers offered as the
answer (``43 or 42``) are no answer, whichever of them is right.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

# A number: commas only as thousands grouping (1,234 and 1,234,567.5; "4,2" is the two numbers 4 and 2), an
# optional sign (ASCII or the unicode minus), an optional decimal part, or a bare decimal part (.5).
NUMBER = re.compile(r"[-+−]?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|[-+−]?\.\d+")
# Text that is an expression rather than a number in prose: LaTeX, fractions, powers, roots. Such answers
# (\frac{1}{2}, 1/2, 2^{3}) are judged by math-verify; a plain product like "6*7" is not an answer.
EXPRESSION = re.compile(r"[\\/^{}√]")
BOXED = "\\boxed{"


def _last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` whose braces balance (nested braces allowed), else None."""
    start = text.rfind(BOXED)
    while start != -1:
        depth, i = 1, start + len(BOXED)
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            return text[start + len(BOXED) : i - 1]
        start = text.rfind(BOXED, 0, start)
    return None


def extract_answer(completion: str) -> str:
    """The final-answer segment of a completion.

    ``\\boxed{..}`` wins, then the text after the last ``####`` (GSM8K style), else the first non-empty line:
    a model that answers and then rambles on is judged on its answer, not on the ramble.
    """
    boxed = _last_boxed(completion)
    if boxed is not None:
        return boxed.strip()
    if "####" in completion:
        completion = completion.rsplit("####", 1)[1]
    for line in completion.splitlines():
        if line.strip():
            return line.strip()
    return ""


def _number(text: str) -> Decimal | None:
    """``text`` as a finite number when it is exactly one (``NUMBER``'s comma rule), else None."""
    text = text.strip()
    if not NUMBER.fullmatch(text):
        return None
    try:
        d = Decimal(text.replace(",", "").replace("−", "-").lstrip("+"))
    except InvalidOperation:
        return None
    return d if d.is_finite() else None


def _latex(text: str) -> str:
    """Plain-text math as one LaTeX expression for math-verify: unwrapped, it reads "2 × 2 × 3" as its last
    number (so "6 × 3" matched it), and "×" / "÷" are not operators to it."""
    text = text.strip().replace("×", r" \times ").replace("÷", r" \div ")
    return text if text.startswith(("$", "\\(", "\\[")) else f"${text}$"


def _math_verify(gold: str, answer: str) -> bool:
    from math_verify import parse, verify

    try:
        return bool(verify(parse(_latex(gold)), parse(_latex(answer))))
    except Exception:  # math-verify raises on unparsable input: treat as wrong
        return False


def score(completion: str, gold: str) -> float:
    """1.0 iff the extracted final answer equals ``gold``.

    Numeric gold: in the answer after its last ``=`` (``3 + 4 = 7`` answers 7), a plain-text answer must hold
    exactly one distinct number and it must equal the gold (``42.0`` == ``42``; ``43 or 42`` is a hedge: 0);
    an expression (``\\frac{1}{2}``, ``1/2``) is checked with math-verify. Other gold answers: the stripped
    text, else math-verify's symbolic equivalence.
    """
    segment = extract_answer(completion)
    if not segment:
        return 0.0
    gold = str(gold).strip()
    gold_num = _number(gold)
    if gold_num is None:
        return float(segment == gold or _math_verify(gold, segment))
    answer = segment.rsplit("=", 1)[1].strip() if "=" in segment else segment
    if EXPRESSION.search(answer):
        # in $..$ so math-verify reads it as LaTeX whole (bare, "2^{3}" parses as 2 and "\\sqrt{4}" not at all)
        return float(_math_verify(gold, f"${answer.strip('$')}$"))
    values = {_number(n) for n in NUMBER.findall(answer)}
    return float(values == {gold_num})
