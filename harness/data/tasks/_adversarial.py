"""The scorer's adversarial table: completions that try to be paid without solving, or to crash or stall the
scorer, each with its expected score and the reason (issue 18's classes), and the restated question of a real
prompt of every built-in task kind. tests/fixtures/test_scoring_adversarial.py checks them; ``python -m harness.bench
scorer`` times them.
"""

from __future__ import annotations

import re

from harness.data.tasks.scoring import MAX_CHARS

TASK_KINDS = ["arithmetic", "chain_sum", "gcd", "lcm", "letter_counting"]

# (class, completion, gold, expected score, reason)
CASES: list[tuple[str, object, object, float, str]] = [
    # --- signs: one rule for hyphen, unicode minus and en dash, with or without a space
    ("signs", " -42", "-42", 1.0, "hyphen sign"),
    ("signs", " - 42", "-42", 1.0, "a sign may be followed by a space"),
    ("signs", " −42", "-42", 1.0, "unicode minus"),
    ("signs", " − 42", "-42", 1.0, "unicode minus and a space"),
    ("signs", " –42", "-42", 1.0, "en dash as minus"),
    ("signs", " – 42", "-42", 1.0, "en dash and a space"),
    ("signs", " - 42", "42", 0.0, "-42 is not 42 (it scored 1 when the spaced sign was dropped)"),
    ("signs", " –42", "42", 0.0, "an en-dash minus is a minus"),
    ("signs", " +42", "42", 1.0, "explicit plus"),
    ("signs", " 42", "-42", 0.0, "a dropped sign is wrong"),
    ("signs", " x = -3", "-3", 1.0, "after '=' a minus is a sign"),
    ("signs", " The answer is - 3.", "-3", 1.0, "after a word a minus is a sign"),
    ("signs", " 5 - 8 = -3", "-3", 1.0, "binary minus inside the expression, sign on the answer"),
    ("signs", " 5 -3", "-3", 0.0, "between two numbers a minus is an operator: '5 -3' is 5 - 3"),
    ("signs", " -(-3)", "3", 0.0, "negating a bracket is an expression, not evaluated"),
    ("signs", " $-\\frac{1}{2}$", "-0.5", 1.0, "a sign before a LaTeX fraction"),
    ("signs", " \\frac{-1}{2}", "-0.5", 1.0, "a sign inside the numerator"),
    ("signs", " ±42", "42", 0.0, "plus-minus offers two values"),
    ("signs", " \\pm 42", "-42", 0.0, "plus-minus in LaTeX"),
    ("signs", " |-42|", "42", 0.0, "an absolute value is an expression"),
    ("signs", " -0", "0", 1.0, "minus zero is zero"),
    # --- hedges: two different numbers offered are no answer, in plain text and in LaTeX
    ("hedges", " 43 or 42", "42", 0.0, "plain-text hedge"),
    ("hedges", " x = 43 or x = 42", "42", 0.0, "hedge between equations (the last '=' alone read 42)"),
    ("hedges", " 41 \\lor 42", "42", 0.0, "LaTeX or"),
    ("hedges", " $41 \\vee 42$", "42", 0.0, "LaTeX vee"),
    ("hedges", " 41 ∨ 42", "42", 0.0, "unicode or"),
    ("hedges", " x = 43 \\text{ or } x = 42", "42", 0.0, "\\text{ or } between equations"),
    ("hedges", " 42, 43", "42", 0.0, "a list"),
    ("hedges", " 42 = 43", "42", 0.0, "an equation of two numbers"),
    ("hedges", " either 42 or 42", "42", 1.0, "the same value twice is one answer"),
    ("hedges", " 42, I mean 42.0", "42", 1.0, "42.0 is 42"),
    ("hedges", " \\frac{1}{2} or \\frac{1}{3}", "0.5", 0.0, "hedge between fractions"),
    ("hedges", " 3 + 4 = 7 = 8", "7", 0.0, "two values in one chain"),
    ("hedges", " 42 or 43 or 44 or 45", "43", 0.0, "a spray of numbers"),
    # --- restated question in operator form (the task-built cases are in test_restated_question_scores_0)
    ("restated", " \\(50 + 83\\)", "133", 0.0, "LaTeX expression of the question: never evaluated"),
    ("restated", " \\boxed{\\(50 + 83\\)}", "133", 0.0, "the boxed form of the same"),
    ("restated", " \\boxed{50 + 83}", "133", 0.0, "boxed expression"),
    ("restated", " \\gcd(6, 10)", "2", 0.0, "a function of the question's operands"),
    ("restated", " \\operatorname{lcm}(6, 10)", "30", 0.0, "operatorname function"),
    ("restated", " $\\mathrm{lcm}(4, 6)$", "12", 0.0, "mathrm function"),
    ("restated", " gcd(6, 6)", "6", 0.0, "plain-text function whose operands equal the gold"),
    ("restated", " 2 + 2", "2", 0.0, "operands equal to the gold are still operands"),
    ("restated", " 2^{3}", "8", 0.0, "a power is an expression"),
    ("restated", " \\sqrt{4}", "2", 0.0, "a root is an expression"),
    ("restated", " \\sqrt{4}", "4", 0.0, "... and its argument is no answer"),
    ("restated", " 2 squared", "2", 0.0, "operator words too"),
    ("restated", " \\frac{6}{3}", "2", 0.0, "an unreduced fraction is a division"),
    ("restated", " 84/2", "42", 0.0, "a division"),
    ("restated", " {10^{10^{8}}}", "1", 0.0, "a power tower is not computed (it took 5.1 s)"),
    ("restated", " 50 + 83 = 133", "133", 1.0, "the question and its answer: the answer counts"),
    ("restated", " 133 = 50 + 83", "133", 1.0, "answer first, then the check (it scored 0)"),
    ("restated", " x ≠ 42", "42", 0.0, "a relation other than '=' is no answer"),
    ("restated", " x \\approx 42", "42", 0.0, "approximately is no answer"),
    ("restated", " x < 43", "42", 0.0, "a bound is no answer"),
    # --- words: numbers are whole tokens of ASCII digits; number words are not read
    ("words", " v42", "42", 0.0, "digits inside a word"),
    ("words", " 42nd", "42", 0.0, "an ordinal"),
    ("words", " x42y", "42", 0.0, "glued on both sides"),
    ("words", " v_42", "42", 0.0, "a subscript"),
    ("words", " x_{1} = 42", "42", 1.0, "a subscripted variable is no number"),
    ("words", " forty-two", "42", 0.0, "number words are not read"),
    ("words", " 42 (forty-two)", "42", 1.0, "digits with words around them"),
    ("words", " The answer is 42.", "42", 1.0, "prose around the number"),
    ("words", " It is 42!", "42", 1.0, "an exclamation is punctuation"),
    ("words", " **42**", "42", 1.0, "markdown emphasis is no product"),
    ("words", " ٤٢", "42", 0.0, "only ASCII digits are digits"),
    ("words", " 四十二", "42", 0.0, "CJK numerals"),
    # --- units
    ("units", " 42 apples", "42", 1.0, "a unit word after the number"),
    ("units", " 42 cm", "42", 1.0, "a unit symbol after a space"),
    ("units", " 42cm", "42", 0.0, "a glued unit makes a word (the v42 rule)"),
    ("units", " $42", "42", 1.0, "a currency sign"),
    ("units", " 42%", "42", 1.0, "a percent sign is read as a unit"),
    ("units", " 42°", "42", 1.0, "a degree sign"),
    ("units", " 42 km/h", "42", 1.0, "a slash between letters is no division of numbers"),
    ("units", " 3 apples and 4 pears", "3", 0.0, "two quantities are two numbers"),
    # --- thousands separators: commas in groups of three only, LaTeX {,} and \, likewise
    ("thousands", " 1,234", "1234", 1.0, "comma groups"),
    ("thousands", " 1,234,567.5", "1234567.5", 1.0, "groups with a decimal part"),
    ("thousands", " 1{,}234", "1234", 1.0, "LaTeX grouping"),
    ("thousands", " 1\\,234", "1234", 1.0, "LaTeX thin space grouping"),
    ("thousands", " 4,2", "42", 0.0, "'4,2' is the numbers 4 and 2"),
    ("thousands", " 12,34", "1234", 0.0, "a group of two digits is no grouping"),
    ("thousands", " 1,2345", "12345", 0.0, "a group of four digits is no grouping"),
    ("thousands", " 1 234", "1234", 0.0, "a space does not group (two numbers)"),
    ("thousands", " 1.234", "1234", 0.0, "a dot is a decimal point"),
    ("thousands", " 1,234", "1.234", 0.0, "... and a comma is not"),
    # --- scientific notation is no number of the grammar
    ("scientific", " 1e3", "1000", 0.0, "'1e3' is a word, not a number token"),
    ("scientific", " 1.5E3", "1500", 0.0, "likewise"),
    ("scientific", " 1.5 \\times 10^{3}", "1500", 0.0, "a product with a power: an expression"),
    ("scientific", " 1.5 × 10^3", "1500", 0.0, "unicode times"),
    ("scientific", " 1000", "1e3", 0.0, "a gold in scientific notation is no number: math-verify reads $1e3$ "
                                        "as 1·e·3"),
    # --- multiple boxes: the last balanced box is the final answer
    ("boxes", " \\boxed{3} then \\boxed{4}", "4", 1.0, "the last box"),
    ("boxes", " \\boxed{3} then \\boxed{4}", "3", 0.0, "an earlier box is not the answer"),
    ("boxes", " \\boxed{41} or \\boxed{42}", "42", 1.0, "only the last box is read, so boxing a second guess "
                                                      "pays exactly as boxing it alone"),
    ("boxes", " \\boxed{\\boxed{42}}", "42", 1.0, "a box in a box"),
    ("boxes", " \\boxed{42} and \\boxed{43", "42", 1.0, "an unbalanced last box: the last balanced one"),
    ("boxes", " \\boxed{41 \\text{ or } 42}", "42", 0.0, "a hedge inside the box"),
    ("boxes", " 43\n\\boxed{42}", "42", 1.0, "a box wins over the first line"),
    ("boxes", " so \\boxed {12} done", "12", 1.0, "a space before the brace"),
    # --- extraction order: box, ####, "answer is", first line
    ("extraction", " 12\nCalculate 3 + 4.\nAnswer: 7", "12", 1.0, "the first line; what follows is a new question"),
    ("extraction", " 12\nCalculate 3 + 4.\nAnswer: 7", "7", 0.0, "the answer to the model's own new question"),
    ("extraction", "Let me add.\n50 + 83 = 133\nThe answer is 133.", "133", 1.0, "an explicit answer phrase "
                                                                                  "(it scored 0 on line one)"),
    ("extraction", "work...\n#### 12", "12", 1.0, "GSM8K's ####"),
    ("extraction", "#### 12\n#### 13", "13", 1.0, "the last ####"),
    ("extraction", "The final answer is: $-7$", "-7", 1.0, "final answer is:"),
    ("extraction", "Final Answer: 7", "7", 1.0, "final answer:"),
    ("extraction", " The answer is 7. Then 8 + 1 = 9.", "7", 1.0, "the phrase's sentence only"),
    ("extraction", " The answer is 3.5.", "3.5", 1.0, "a decimal point is no sentence end"),
    ("extraction", "\n\n 12 \n 13", "12", 1.0, "blank lines are skipped"),
    # --- empty, missing, huge, deeply nested, wrong types
    ("inputs", "", "5", 0.0, "empty"),
    ("inputs", "   \n  ", "5", 0.0, "blank"),
    ("inputs", None, "5", 0.0, "no completion"),
    ("inputs", b" 5", "5", 0.0, "bytes are not text"),
    ("inputs", 5, "5", 0.0, "a number is not a completion"),
    ("inputs", ["5"], "5", 0.0, "a list of strings is no conversation"),
    ("inputs", " 5", None, 0.0, "a missing gold is no gold (it became the string 'None')"),
    ("inputs", " None", None, 0.0, "... so 'None' does not match it"),
    ("inputs", " 5", "", 0.0, "an empty gold"),
    ("inputs", " 5", 5, 1.0, "an int gold is read as its text"),
    ("inputs", " 0.5", 0.5, 1.0, "a float gold"),
    ("inputs", " 5", True, 0.0, "a bool is no gold"),
    ("inputs", " 5", [5], 0.0, "a list is no gold"),
    ("inputs", " 42" + " " * 2_000_000, "42", 0.0, f"over {MAX_CHARS:,} characters is no answer"),
    ("inputs", "\\boxed{" * 200_000, "42", 0.0, "200,000 unbalanced boxes: one linear pass (2,000 took 5.6 s)"),
    ("inputs", "\\boxed{" * 50_000 + "42" + "}" * 50_000, "42", 1.0, "50,000 nested boxes"),
    ("inputs", "{" * 2_000 + "42" + "}" * 2_000, "42", 1.0, "deep braces"),
    ("inputs", "(" * 6_000 + "42" + ")" * 6_000, "42", 0.0, "a final answer over 10,000 characters is none"),
    ("inputs", " " + "9" * 5_000, "9" * 5_000, 1.0, "a very long number: compared as text, never converted"),
    ("inputs", " " + "9" * 5_000 + " 42", "42", 0.0, "a very long number still counts in a hedge"),
    ("inputs", " 1" + " + 1" * 3_000, "3001", 0.0, "a long expression is not evaluated"),
    ("inputs", "\x00 42 \x00", "42", 1.0, "control characters are punctuation"),
    ("inputs", " \ud800 42", "42", 1.0, "a lone surrogate"),
    # --- symbolic golds: math-verify within its bound, never on a hedge
    ("symbolic", " x + 1", "1 + x", 1.0, "math-verify's equivalence"),
    ("symbolic", " The value is $x+1$.", "1 + x", 1.0, "a $..$ answer is not wrapped again (wrapped, it scored 0)"),
    ("symbolic", " \\(x+1\\)", "1 + x", 1.0, "nor a \\(..\\) answer"),
    ("symbolic", " x + 1 or x + 2", "1 + x", 0.0, "a hedge word"),
    ("symbolic", " x + 2", "1 + x", 0.0, "not equivalent"),
    ("symbolic", " 10^{10^{8}}", "x", 0.0, "a power tower is not handed to math-verify"),
    ("symbolic", " nan", "nan", 1.0, "the same text"),
    # --- conversational completions (TRL passes a list of messages for conversational datasets)
    ("messages", [{"role": "assistant", "content": " 42"}], "42", 1.0, "the assistant's text"),
    ("messages", [{"role": "assistant", "content": [{"type": "text", "text": " 42"}]}], "42", 1.0,
     "content parts"),
    ("messages", [{"role": "user", "content": "42"}], "42", 0.0, "no assistant message"),
    ("messages", [{"role": "assistant", "content": "41"}, {"role": "assistant", "content": "42"}], "42", 1.0,
     "the last assistant message"),
    ("messages", {"role": "assistant", "content": " 42"}, "42", 1.0, "a single message"),
    ("messages", [{"role": "assistant", "content": None}], "42", 0.0, "no content"),
    ("messages", [{"role": "assistant"}], "42", 0.0, "a message without content"),
    ("messages", [{"role": "assistant", "content": {"text": "42"}}], "42", 0.0, "content of an unknown shape"),
    ("messages", [[{"role": "assistant", "content": "42"}]], "42", 0.0, "a batch is not a completion"),
]



def restatements(task: str, prompt: str) -> list[str]:
    """The question of a real prompt written back as an answer, in the forms a model knows."""
    if task == "arithmetic":
        expr = re.search(r"Calculate (.+)\.\n", prompt)[1]
    elif task == "chain_sum":
        expr = re.search(r"problem: (.+?) =\n", prompt)[1]
    elif task in ("gcd", "lcm"):
        args = re.search(r"numbers: ([0-9, ]+?)\.?\n| numbers: ([0-9, ]+?)\. ", prompt)
        args = (args[1] or args[2]).strip()
        return [f"\\{task}({args})" if task == "gcd" else f"\\operatorname{{lcm}}({args})",
                f"{task}({args})", f"{task.upper()}({args})", f"\\boxed{{\\operatorname{{{task}}}({args})}}",
                f"\\(\\mathrm{{{task}}}({args})\\)", f"The {task.upper()} of {args}", f"{args}"]
    else:  # letter_counting
        letter, text = re.search(r'letter "(.)" appear in the text: "(.*)"\?', prompt).groups()
        return [prompt.split("\n")[0], f'\\text{{count}}("{letter}", "{text}")', f"\\#\\{{{letter} \\in {text}\\}}",
                f"the letter {letter} in {text}"]
    return [expr, f"\\({expr}\\)", f"\\boxed{{\\({expr}\\)}}", f"\\boxed{{{expr}}}", f"${expr}$", f"{expr} =",
            f"\\[{expr}\\]", f"\\text{{{expr}}}", prompt.split("\n")[0]]
