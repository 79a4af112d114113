"""Final-answer extraction and exact checking: the one scorer behind the RLVR reward, pass rates and lm-eval.

A false positive here is a reward-hacking hole that a policy finds at scale, so the rules are few, written
down (docs/scoring.md, with its measurements) and tested as a table
(tests/fixtures/test_scoring.py checks the rule table of docs/scoring.md; tests/fixtures/test_scoring_adversarial.py holds the adversarial
cases):

1. **Input.** Any type: a ``str`` is the completion, a TRL conversational completion (a list of message dicts)
   is read as its last assistant message; anything else (None, bytes, a number) scores 0, and so does a
   missing gold (None). :func:`score` never raises.
2. **Final answer** (:func:`extract`): the last balanced ``\\boxed{}``, else the first non-empty line after the
   last ``####``, else the rest of the sentence after the last "answer is" / "final answer:", else the first
   non-empty line (docs/scoring.md: below the answer line the base rambles, and the numbers there are none).
3. **Numeric gold.** The answer's *standalone* numbers must be exactly one value, equal to the gold. A number
   is a whole token (``v42``, ``42nd``, ``1e3`` hold none) of ASCII digits: an integer, a decimal, or a reduced
   fraction (``1/2``, ``\\frac{1}{2}``; ``4/2`` is a division), with commas only in groups of three, signed by
   a hyphen, the minus sign or an en dash, with or without a space (``- 42`` is -42); LaTeX wrappers
   (``$..$``, ``\\(..\\)``, ``\\text{}``, ``\\boxed{}``) are read through. A number that is an operand of an
   operator (``+ - * / ^ × ÷ \\times``), of a relation other than ``=`` (``≠ < \\approx``) or of a function
   (``\\gcd(6, 10)``, ``\\sqrt{4}``, ``2^{3}``) belongs to an expression, and nothing is ever evaluated:
   ``50 + 83`` holds no answer, ``50 + 83 = 133`` and ``133 = 50 + 83`` answer 133. Two different standalone
   numbers are a hedge (``43 or 42``, ``x = 43 \\lor x = 42``): 0.
4. **Other golds** (symbolic): the same text, else math-verify's equivalence within a wall-clock bound
   (:mod:`harness.data.tasks._mathverify`); an answer with a hedge word (``or``, ``\\lor``, ``\\vee``) scores 0.
5. **Bounded.** Every scan is linear; a completion over :data:`MAX_CHARS`, or a final answer over
   :data:`MAX_SEGMENT` characters, is no answer.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import numbers
import re
from decimal import Decimal
from fractions import Fraction
from math import gcd

MAX_CHARS = 1_000_000  # longer completions are no answer: the scans below are linear, this caps their time
MAX_SEGMENT = 10_000  # a final answer longer than this is no answer (it is tokenized in Python)
MAX_DIGITS = 200  # a longer number token is a value no gold equals (int(str) slows quadratically with length)
MAX_SYMBOLIC = 500  # characters of gold + answer handed to math-verify
MAX_MESSAGES = 64  # messages of a conversational completion looked at (from the end)

log = logging.getLogger(__name__)

# --- the completion's text ------------------------------------------------------------------------------------


def _content(content: object) -> str | None:
    """A message's content: a str, or the text parts of a list of content parts (``{"type": "text", ...}``)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list | tuple):
        parts = [p if isinstance(p, str) else p.get("text") for p in content[:MAX_MESSAGES]
                 if isinstance(p, str) or (isinstance(p, dict) and isinstance(p.get("text"), str))]
        return "".join(parts) if parts else None
    return None


def completion_text(completion: object) -> str | None:
    """The text a completion holds: a ``str`` itself; a conversational completion (a message dict or a list of
    them, as TRL passes for conversational datasets) its last assistant message; anything else None."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        completion = [completion]
    if isinstance(completion, list | tuple):
        for message in reversed(completion[-MAX_MESSAGES:]):
            if isinstance(message, dict) and message.get("role") == "assistant":
                return _content(message.get("content"))
    return None


def _gold_text(gold: object) -> str | None:
    """The gold answer as text: a str, or a number's ``str``; None (missing) and anything else give None."""
    if isinstance(gold, str):
        return gold
    if isinstance(gold, numbers.Number) and not isinstance(gold, bool):
        return str(gold)
    return None


# --- the final answer ---------------------------------------------------------------------------------------

RULES = ("boxed", "####", "answer is", "first line")  # the extractor's rules, in the order they are tried
_BOX = re.compile(r"\\boxed\s*\{|[{}]")
_ANSWER_IS = re.compile(r"\b(?:final\s+answer\s*(?:is\b|:)|answer\s+is\b)\s*:?", re.I)
_SENTENCE_END = re.compile(r"\.(?=\s|$)")


def _last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` whose braces balance (nested braces allowed), else None: one pass
    over the braces with a stack (the last box is the balanced one that opens last)."""
    best_start, best_end = -1, -1
    opened: list[int] = []  # per open brace: where a box's content starts, -1 for a plain brace
    for m in _BOX.finditer(text):
        if m.group() == "}":
            if opened:
                start = opened.pop()
                if start > best_start:
                    best_start, best_end = start, m.start()
        else:
            opened.append(m.end() if len(m.group()) > 1 else -1)
    return text[best_start:best_end] if best_start >= 0 else None


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def _after_phrase(text: str) -> str | None:
    """The rest of the sentence after the last "answer is" / "final answer:", or None without one."""
    last = None
    for m in _ANSWER_IS.finditer(text):
        last = m
    if last is None:
        return None
    line = _first_line(text[last.end():])
    end = _SENTENCE_END.search(line)
    return line[: end.start()].strip() if end else line


def extract(completion: object) -> tuple[str, str]:
    """(rule, final-answer segment) of a completion; the rule is one of :data:`RULES`, or ``""`` for a
    completion without text. The first rule that applies decides."""
    text = completion_text(completion)
    if text is None or len(text) > MAX_CHARS:
        return "", ""
    boxed = _last_boxed(text)
    if boxed is not None:
        return "boxed", boxed.strip()
    if "####" in text:
        return "####", _first_line(text.rsplit("####", 1)[1])
    phrase = _after_phrase(text)
    if phrase is not None:
        return "answer is", phrase
    return "first line", _first_line(text)


def extract_answer(completion: object) -> str:
    """The final-answer segment of a completion (:func:`extract`)."""
    return extract(completion)[1]


# --- numbers in an answer -----------------------------------------------------------------------------------

_UNICODE = str.maketrans({"−": "-", "–": "-", "‒": "-", "﹣": "-", "－": "-", "∗": "*", "✕": "*", "⋅": "·",
                          "∨": " or ", "＝": "=", "∣": "|"})
# LaTeX that only wraps or spaces what it holds (read through), and its thousands separators 1{,}234 and 1\,234.
_WRAP = re.compile(r"\\(?:boxed|fbox|text|textbf|textit|textrm|textnormal|textsf|texttt|mathrm|mathbf|mathit|"
                   r"mathsf|mathtt|mathnormal|mbox|hbox|emph|operatorname\*?)\s*\{([^{}]*)\}")
_FRAC = re.compile(r"\\[dt]?frac\s*(?:\{\s*(-?)\s*([0-9]+)\s*\}|([0-9]))\s*(?:\{\s*([0-9]+)\s*\}|([0-9]))")
_THOUSANDS = re.compile(r"(?<=[0-9])(?:\{,\}|\\,)(?=[0-9]{3}(?![0-9]))")
_DELIM = re.compile(r"\$+|\\[()\[\]]|\\[,;:!> ]|\\[{}%#&$]")
_COMMAND = re.compile(r"\\([A-Za-z]+)")
# LaTeX commands by what they do to a number beside them; any other command is a function of what follows.
_SPACING = {"quad", "qquad", "left", "right", "displaystyle", "textstyle", "big", "Big", "bigl", "bigr", "Bigl",
            "Bigr", "bigg", "Bigg", "nonumber", "ldots", "dots", "cdots"}
_CMD_AS = {**dict.fromkeys(("times", "cdot", "ast", "star"), "*"), **dict.fromkeys(("div", "over"), "/"),
           **dict.fromkeys(("pm", "mp", "bmod", "mod", "pmod"), "±"),
           **dict.fromkeys(("lor", "vee", "land", "wedge"), " or "),
           **dict.fromkeys(("ne", "neq", "le", "leq", "ge", "geq", "lt", "gt", "leqslant", "geqslant", "approx",
                            "sim", "simeq", "equiv", "cong", "propto", "ll", "gg", "in", "notin"), "≠")}

_TOKEN = re.compile(
    r"(?P<frac>[0-9]+[ \t]*/[ \t]*[0-9]+)(?![^\W_]|\.[0-9]|[ \t]*/)"
    r"|(?P<num>(?:[0-9]{1,3}(?:,[0-9]{3})+(?![0-9])|[0-9]+)(?:\.[0-9]+)?|\.[0-9]+)(?![^\W_])"
    r"|(?P<word>[^\W_]+)"
    r"|(?P<func>\\[A-Za-z]+|√)"
    r"|(?P<sign>[-+])"
    r"|(?P<op>[*/^×·÷])"
    r"|(?P<mark>[<>≠≤≥≈≡±|])"
    r"|(?P<open>[(\[{])"
    r"|(?P<close>[)\]}])"
    r"|(?P<sub>_)"
    r"|(?P<space>\s+)"
    r"|(?P<other>.)", re.S)
# Words that are an operator or a function of the numbers beside them (never evaluated: their operands are no
# answer); a word directly followed by "(" is a function too (``f(3)``).
_OP_WORDS = {"plus", "minus", "times", "over", "divided", "mod", "modulo", "squared", "cubed", "factorial",
             "power", "root"}
_FUNC_WORDS = {"gcd", "lcm", "hcf", "gcf", "sqrt", "abs", "max", "min", "log", "ln", "exp", "sin", "cos", "tan",
               "floor", "ceil", "round", "sum", "prod"}
_LEFT_OPERAND = {"num", "frac", "var", "close"}
_RIGHT_OPERAND = {"num", "frac", "var", "open", "func", "sign"}


def _normalize(text: str) -> str:
    """LaTeX and unicode read as plain text: wrappers dropped, ``\\frac{a}{b}`` of integers as ``a/b``, operator
    and relation commands as one character each (see :data:`_TOKEN`), other commands kept (functions)."""
    text = text.translate(_UNICODE)
    for _ in range(8):  # wrappers inside wrappers, innermost first; deeper nesting stays a function
        text, n = _WRAP.subn(r" \1 ", text)
        if not n:
            break
    text = _FRAC.sub(lambda m: f" {m[1] or ''}{m[2] or m[3]}/{m[4] or m[5]} ", text)
    text = _THOUSANDS.sub(",", text)
    text = _DELIM.sub(lambda m: m[0][-1] if m[0][-1] in "{}%#&" else " ", text)
    return _COMMAND.sub(lambda m: " " if m[1] in _SPACING else _CMD_AS.get(m[1], m[0]), text)


class _TooLong:
    """The value of a number token over MAX_DIGITS: equal to nothing but itself (so it still counts as a hedge)."""


def _tokens(text: str) -> list[tuple[str, str]]:
    """(kind, text) of every token but spaces; words classified as operator, function, variable or word."""
    out: list[tuple[str, str]] = []
    prev_end = -1
    for m in _TOKEN.finditer(text):
        kind, tok = m.lastgroup, m[0]
        if kind == "space":
            continue
        if kind == "word":
            low = tok.lower()
            if low in _OP_WORDS:
                kind = "mark"
            elif low in _FUNC_WORDS or text.startswith("(", m.end()):
                kind = "func"
            elif len(tok) == 1 and tok.isascii():
                kind = "var"
        elif kind == "sub":  # x_1, x_{12}: a subscript is a function of what follows; " _42_" is emphasis
            kind = "func" if prev_end == m.start() and out and out[-1][0] in ("word", "var", "close") else "other"
        out.append((kind, tok))
        prev_end = m.end()
    return out


def _value(kind: str, tok: str, negative: bool) -> Fraction | _TooLong | None:
    """A number token's exact value; None for a fraction that is not reduced (a division, not a number)."""
    digits = tok.replace(",", "").replace(" ", "").replace("\t", "")
    if len(digits) > MAX_DIGITS:
        return _TooLong()
    if kind == "frac":
        p, q = (int(x) for x in digits.split("/"))
        if q <= 1 or gcd(p, q) != 1:
            return None
        value = Fraction(p, q)
    else:
        value = Fraction(Decimal(digits))
    return -value if negative else value


def _atoms(tokens: list[tuple[str, str]]) -> list[tuple[str, object]]:
    """Signs resolved: a sign with no operand on its left and a number on its right is the number's sign (one
    sign rule: ``-42``, ``- 42`` and ``−42`` alike); between two operands it is an operator; before another
    operand a prefix operator. ``* / ^ × · ÷`` are operators only between two operands (``**42**`` is emphasis).
    Numbers become ("num", value); operators ("op", text)."""
    atoms: list[tuple[str, object]] = []
    i, n = 0, len(tokens)
    while i < n:
        kind, tok = tokens[i]
        left = tokens[i - 1][0] if i else None
        right = tokens[i + 1][0] if i + 1 < n else None
        if kind == "sign":
            if left not in _LEFT_OPERAND and right in ("num", "frac"):
                value = _value(right, tokens[i + 1][1], tok == "-")
                atoms.append(("num", value) if value is not None else ("op", "/"))
                i += 2
                continue
            kind = "op" if right in _RIGHT_OPERAND else "other"
        elif kind == "op":
            kind = "op" if left in _LEFT_OPERAND and right in _RIGHT_OPERAND else "other"
        if kind in ("num", "frac"):
            value = _value(kind, tok, False)
            atoms.append(("num", value) if value is not None else ("op", "/"))
        else:
            atoms.append((kind, tok))
        i += 1
    return atoms


def _standalone(atoms: list[tuple[str, object]]):
    """Values of the numbers that are no operand of an operator, relation or function, in order."""
    groups: list[bool] = []  # per open bracket: is it an expression group (an argument, an exponent)?
    just_closed_expr = False
    for i, (kind, value) in enumerate(atoms):
        if kind == "open":
            prev = atoms[i - 1][0] if i else None
            groups.append((bool(groups) and groups[-1]) or prev in ("func", "op", "mark")
                          or (just_closed_expr and value == "{"))  # \frac{a}{b}: the next argument too
        elif kind == "close":
            just_closed_expr = groups.pop() if groups else False
            continue
        elif kind == "num" and not (groups and groups[-1]):
            j = i - 1
            while j >= 0 and atoms[j][0] == "open":
                j -= 1
            k = i + 1
            while k < len(atoms) and atoms[k][0] == "close":
                k += 1
            if not (j >= 0 and atoms[j][0] in ("func", "op", "mark")) and not (
                    k < len(atoms) and atoms[k][0] in ("op", "mark")):
                yield value
        just_closed_expr = False


def numbers_in(text: str, standalone: bool = True) -> list[Fraction | _TooLong]:
    """The standalone numbers of an answer, in order (the scorer's reading: see the module's rule 3); with
    ``standalone=False`` every number, operands included (``50 + 83 = 133`` -> 50, 83, 133)."""
    atoms = _atoms(_tokens(_normalize(text[:MAX_SEGMENT])))
    if standalone:
        return list(_standalone(atoms))
    return [v for kind, v in atoms if kind == "num"]


def answer_number(segment: str) -> Fraction | None:
    """The one value of the answer's standalone numbers; None for no number or a hedge (two different ones)."""
    found = None
    for value in _standalone(_atoms(_tokens(_normalize(segment)))):
        if found is None:
            found = value
        elif value != found:
            return None  # a hedge: stop at the second distinct value
    return found if isinstance(found, Fraction) else None


def read_number(text: str) -> Fraction | None:
    """``text`` as a number when it is exactly one number (the grammar of rule 3, wrappers allowed), else None."""
    if len(text) > MAX_SEGMENT:
        return None
    atoms = _atoms(_tokens(_normalize(text)))
    if len(atoms) == 1 and atoms[0][0] == "num" and isinstance(atoms[0][1], Fraction):
        return atoms[0][1]
    return None


# --- symbolic golds -----------------------------------------------------------------------------------------

_HEDGE_WORD = re.compile(r"\bor\b|\\lor\b|\\vee\b|∨", re.I)
# Input math-verify would compute for long (an uninterruptible big-integer power in C): power towers, huge
# numbers and factorials. The helper's wall-clock bound catches the rest; this keeps it from being killed often.
_COSTLY = re.compile(r"\^\s*\{[^}]*\^|\^\s*\(?[0-9.]+\)?\s*\^|\*\*[^*]*\*\*|[0-9]{31}|[0-9]{3,}\s*!")


def _latex(text: str) -> str:
    """Text for math-verify: ``×``/``÷`` as LaTeX operators, and wrapped in ``$..$`` only when it holds no math
    delimiter yet (wrapping ``see $x$`` again gave ``$see $x$$``, which math-verify misreads)."""
    text = text.strip().replace("×", r" \times ").replace("÷", r" \div ").replace("−", "-")
    return text if re.search(r"\$|\\\(|\\\[|\\boxed", text) else f"${text}$"


def _symbolic(gold: str, segment: str) -> bool:
    from harness.data.tasks import _mathverify

    if " ".join(segment.split()) == " ".join(gold.split()):
        return True
    if _HEDGE_WORD.search(segment) or len(gold) + len(segment) > MAX_SYMBOLIC or _COSTLY.search(gold + " " + segment):
        return False
    return _mathverify.verify(_latex(gold), _latex(segment))


# --- the score ----------------------------------------------------------------------------------------------


def _score(completion: object, gold: object) -> bool:
    gold = _gold_text(gold)
    if gold is None or not gold.strip():
        return False
    _, segment = extract(completion)
    if not segment or len(segment) > MAX_SEGMENT:
        return False
    gold_value = read_number(gold)
    if gold_value is not None:
        return answer_number(segment) == gold_value
    return _symbolic(gold.strip(), segment)


def score(completion: object, gold: object) -> float:
    """1.0 iff the completion's final answer equals ``gold`` under the rules of this module's docstring, else
    0.0. Total: any input type gives a score, and nothing raises."""
    try:
        return float(_score(completion, gold))
    except Exception as exc:  # a scorer bug must not stop training: count it as no answer, and say so once
        if type(exc) not in _LOGGED:
            _LOGGED.add(type(exc))
            log.warning("scorer failed (%s: %s); scored 0", type(exc).__name__, exc)
        return 0.0


_LOGGED: set[type] = set()


@functools.cache
def scorer_version() -> str:
    """Hash of the scorer's source (this module and its math-verify helper): caches of scored samples (the base's
    evaluation, pass rates, the prompt filter, pass@k) are keyed by it, so a scorer change recomputes them."""
    from pathlib import Path

    here = Path(__file__).parent
    blob = b"".join((here / name).read_bytes() for name in ("scoring.py", "_mathverify.py") if (here / name).exists())
    return hashlib.sha256(blob).hexdigest()[:12]
