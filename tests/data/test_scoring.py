"""The scorer behind the RLVR reward, pass rates and lm-eval: the rule table of docs/scoring.md and hand-built completions
with known scores (the adversarial table is in test_scoring_adversarial.py)."""

from fractions import Fraction

import pytest

from harness.data.tasks import extract_answer, score
from harness.data.tasks.scoring import numbers_in
from tests.conftest import ROOT


def rule_table() -> list[tuple[str, str, str | None, float]]:
    """(rule, completion, gold, score) rows of the scorer's rule table in docs/scoring.md (⏎ is a newline, a bare
    None a missing gold)."""
    lines = (ROOT / "docs" / "scoring.md").read_text().splitlines()
    start = lines.index("| rule | completion | gold | score |") + 2
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rule, completion, gold, expected = (c.strip() for c in line.strip("|").split(" | "))
        code = lambda cell: cell[1:-1].replace("⏎", "\n") if cell.startswith("`") else None  # noqa: E731
        rows.append((rule, code(completion), code(gold), float(expected)))
    return rows


@pytest.mark.parametrize("rule,completion,gold,expected", rule_table())
def test_rule_table(rule, completion, gold, expected):
    assert score(completion, gold) == expected, rule


def test_rule_table_is_read():
    rows = rule_table()
    assert len(rows) >= 20 and any(g is None for _, _, g, _ in rows) and any("\n" in c for _, c, _, _ in rows)


TABLE = [
    (" 116", "116", 1.0),
    (" 116\nCalculate 3 + 4.", "116", 1.0),  # rambling after the answer is ignored
    ("The answer is 116.", "116", 1.0),
    (" 1116", "116", 0.0),  # contains the gold string: no partial credit
    (" 116 or 117", "116", 0.0),  # a hedge: two different numbers are no answer
    (" 43 or 42", "42", 0.0),  # ... even when the last one is right (it scored 1 when the last number won)
    (" 42, I mean 42", "42", 1.0),  # the same number twice is one answer
    (" 3 + 4 = 7", "7", 1.0),  # the answer is what follows the last "="
    (" 7 = 3 + 4", "7", 1.0),  # issue 18: the answer stated first, then its check (it scored 0)
    (" -42", "-42", 1.0),
    (" 42", "-42", 0.0),
    (" −42", "-42", 1.0),  # unicode minus
    (" +7", "7", 1.0),
    (" 3.50", "3.5", 1.0),
    (" 3.5", "3.50", 1.0),
    (" 3.51", "3.5", 0.0),
    (" 12.0", "12", 1.0),
    (" .5", "0.5", 1.0),
    (" 1,234", "1234", 1.0),  # commas group thousands ...
    (" 1,234,567.5", "1234567.5", 1.0),
    (" 4,2", "42", 0.0),  # ... and nothing else: "4,2" is the numbers 4 and 2, not 42
    (" 12,34", "1234", 0.0),
    (" 1,2345", "12345", 0.0),
    ("", "5", 0.0),
    ("   \n  ", "5", 0.0),
    (" five", "5", 0.0),
    ("work...\n#### 12", "12", 1.0),
    ("so \\boxed{12} done", "12", 1.0),
    ("so \\boxed{17} and 18", "17", 1.0),  # the boxed answer wins over the line
    ("\\boxed{3} then \\boxed{4}", "4", 1.0),  # the last box
    ("\\boxed{\\frac{1}{2}}", "0.5", 1.0),  # nested braces; math-verify for a numeric gold given an expression
    ("so \\boxed{\\frac{1}{2}} done", "\\frac{1}{2}", 1.0),
    ("\\boxed{\\frac{1}{3}}", "0.5", 0.0),
    (" x = 1/2", "0.5", 1.0),
    (" 1/2", "0.5", 1.0),
    (" 2^{3}", "8", 0.0),  # issue 18: an expression is never evaluated for a numeric gold (math-verify scored 1)
    (" \\sqrt{4}", "2", 0.0),  # likewise
    (" \\frac{1}{2} or \\frac{1}{3}", "0.5", 0.0),  # a hedge between expressions
    (" 1/3 or 1/2", "0.5", 0.0),
    (" 6*7", "42", 0.0),  # an unevaluated product is not an answer
    ("\\boxed{\\frac{1}{2}", "0.5", 0.0),  # unbalanced box: judged on the line, "\frac{1}{2" does not parse
    (" \\frac{1}{2}", "\\frac{1}{2}", 1.0),
    (" x = 1/2", "\\frac{1}{2}", 1.0),  # math-verify on expressions
    (" 1/3", "\\frac{1}{2}", 0.0),
    (" nan", "nan", 1.0),  # not a number: compared as text
    (" 5", "nan", 0.0),
]


@pytest.mark.parametrize("completion,gold,expected", TABLE)
def test_score_table(completion, gold, expected):
    assert score(completion, gold) == expected


def test_extract_answer_first_line():
    assert extract_answer("\n\n 12 \n 13") == "12"


@pytest.mark.parametrize("completion,expected", [
    ("a \\boxed{x^{2}+\\frac{1}{2}} b", "x^{2}+\\frac{1}{2}"),  # balanced nested braces
    ("\\boxed{1} \\boxed{2", "1"),  # the last box is unbalanced: the last balanced one
    ("\\boxed{ 7 }", "7"),
])
def test_extract_answer_boxed(completion, expected):
    assert extract_answer(completion) == expected


def test_numbers_group_thousands_only():
    got = numbers_in("1,234 and 4,2 and 1,2345 and -3.5", standalone=False)
    assert got == [1234, 4, 2, 1, 2345, Fraction(-7, 2)]


def test_expression_gold_is_compared_whole_not_by_its_last_number():
    # math-verify on bare text took "2 × 2 × 2 × 3" as its last number, 3, so any "... × 3" matched it
    assert score(" 6 × 3", "2 × 2 × 2 × 3") == 0.0
    assert score(" 2 × 2 × 2 × 3", "2 × 2 × 2 × 3") == 1.0
    assert score(" x + 1", "1 + x") == 1.0
