import pytest

from harness.tasks import extract_answer, score

TABLE = [
    (" 116", "116", 1.0),
    (" 116\nCalculate 3 + 4.", "116", 1.0),  # rambling after the answer is ignored
    ("The answer is 116.", "116", 1.0),
    (" 1116", "116", 0.0),  # contains the gold string: no partial credit
    (" 116 or 117", "116", 0.0),  # the last number in the answer line counts
    (" -42", "-42", 1.0),
    (" 42", "-42", 0.0),
    (" −42", "-42", 1.0),  # unicode minus
    (" +7", "7", 1.0),
    (" 3.50", "3.5", 1.0),
    (" 3.5", "3.50", 1.0),
    (" 3.51", "3.5", 0.0),
    (" 1,234", "1234", 1.0),
    ("", "5", 0.0),
    ("   \n  ", "5", 0.0),
    (" five", "5", 0.0),
    ("work...\n#### 12", "12", 1.0),
    ("so \\boxed{12} done", "12", 1.0),
    (" \\frac{1}{2}", "\\frac{1}{2}", 1.0),
    (" x = 1/2", "\\frac{1}{2}", 1.0),  # math-verify on expressions
    (" 1/3", "\\frac{1}{2}", 0.0),
]


@pytest.mark.parametrize("completion,gold,expected", TABLE)
def test_score_table(completion, gold, expected):
    assert score(completion, gold) == expected


def test_extract_answer_first_line():
    assert extract_answer("\n\n 12 \n 13") == "12"
