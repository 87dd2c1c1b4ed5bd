"""The one answer normalizer and checker: numbers (GSM8K-style) and short texts (SQuAD-style exact match).

Everything that judges an answer (memory trials, evaluation, self-consistency votes) goes through
:func:`is_correct`, so "correct" means the same thing everywhere.
"""

from __future__ import annotations

import re
import string
from decimal import Decimal
from fractions import Fraction
from typing import Literal

AnswerKind = Literal["auto", "number", "text"]

#: A number as people and models write it: ``-$1,234.50``, ``3/4``, ``1 1/2``, ``.5``, ``2e3``.
_NUMBER = re.compile(
    r"(?<![\w.])(?P<sign>[-+\u2212])?\s?[$€£¥]?\s?"
    r"(?P<whole>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|\.\d+)"
    r"(?:(?:\s+|(?<=\d)-)(?P<mixnum>\d+)\s*/\s*(?P<mixden>\d+)|\s*/\s*(?P<den>\d+(?:\.\d+)?))?"
)
#: A gold answer that is only a number (so ``auto`` compares numbers): digits, sign, currency, %, a fraction.
_NUMERIC_GOLD = re.compile(r"\s*[-+\u2212]?\s?[$€£¥]?\s?[\d,]*\.?\d+(?:[eE][-+]?\d+)?(?:\s*/\s*\d+)?\s*%?\s*\.?\s*")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation) | {"\u2018", "\u2019", "\u201c", "\u201d", "\u2013", "\u2014"}
#: Relative tolerance of numeric comparison (absolute below 1).
_TOLERANCE = 1e-6
#: Longest number text read, and largest exponent: ``1e999999999`` as an exact fraction would take minutes and
#: gigabytes, and an integer of more than 4300 digits cannot even be printed. Beyond these it is not a number.
_MAX_NUMBER_CHARS = 1000
_MAX_EXPONENT = 1000


def parse_number(text: str | None) -> Fraction | None:
    """The last number in ``text`` as an exact fraction, or ``None`` when there is none.

    Currency signs, thousands separators and trailing units are ignored; ``3/4`` and ``1 1/2`` are
    fractions (a zero denominator is not a number).
    """
    if not text:
        return None
    value: Fraction | None = None
    for match in _NUMBER.finditer(text):
        parsed = _to_fraction(match)
        if parsed is not None:
            value = parsed
    return value


def _to_fraction(match: re.Match[str]) -> Fraction | None:
    if len(match[0]) > _MAX_NUMBER_CHARS:
        return None
    whole = match["whole"].replace(",", "")
    _, _, exponent = whole.lower().partition("e")
    if exponent and abs(int(exponent)) > _MAX_EXPONENT:
        return None
    try:
        value = Fraction(whole)
        if match["mixden"] is not None:
            den = Fraction(match["mixden"])
            if den == 0 or "." in match["whole"]:
                return None
            value += Fraction(match["mixnum"]) / den
        elif match["den"] is not None:
            den = Fraction(match["den"])
            if den == 0:
                return None
            value /= den
    except (ValueError, ZeroDivisionError, OverflowError):
        return None
    return -value if match["sign"] in ("-", "\u2212") else value


def format_number(value: Fraction) -> str:
    """Canonical text of a number: integers without ``.0``, others as up to 10 significant digits."""
    try:
        if value.denominator == 1:
            return str(value.numerator)
        as_float = float(value)
        if as_float == 0:  # below a float's range (the fraction is not 0): exponent form
            raise OverflowError
        text = format(as_float, ".10g")
    except (OverflowError, ValueError):  # beyond a float, or an integer too long for str(): exponent form
        text = format(Decimal(value.numerator) / Decimal(value.denominator), ".10g")
    return text if "e" in text else text.rstrip("0").rstrip(".")


def normalize_number(text: str | None) -> str | None:
    """The last number in ``text`` in canonical form (``"$1,234.50 dollars"`` → ``"1234.5"``), or ``None``.

    Args:
        text: A model's answer or a gold label; may be a whole sentence.

    Returns:
        ``"18"`` for ``"18.0"``, ``"0.75"`` for ``"3/4"``, ``"-5"`` for ``"−5 °C"``; ``None`` without a number.
    """
    value = parse_number(text)
    return None if value is None else format_number(value)


def normalize_text(text: str | None) -> str:
    """SQuAD normalization: lower case, no punctuation, no articles (a, an, the), single spaces."""
    if not text:
        return ""
    lowered = text.lower()
    no_punct = "".join(ch for ch in lowered if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", no_punct).split())


def is_numeric(gold: str) -> bool:
    """Whether a gold answer is just a number (with an optional sign, currency, %, fraction)."""
    return bool(_NUMERIC_GOLD.fullmatch(gold)) and parse_number(gold) is not None


def numbers_equal(a: Fraction, b: Fraction) -> bool:
    """Equal up to a relative tolerance of 1e-6 (absolute for numbers below 1)."""
    return abs(a - b) <= _TOLERANCE * max(1, abs(b))


def is_correct(prediction: str | None, gold: str | None, kind: AnswerKind = "auto") -> bool:
    """Judge ``prediction`` against ``gold``.

    Args:
        prediction: The model's final answer (a sentence is fine: the last number counts for numbers).
        gold: The reference answer.
        kind: ``number`` compares the last numbers (tolerance 1e-6); ``text`` is SQuAD exact match
            after :func:`normalize_text`; ``auto`` uses ``number`` when ``gold`` is only a number, else ``text``.

    Returns:
        ``False`` when either side is missing or, for numbers, has no number.
    """
    if prediction is None or gold is None:
        return False
    if kind == "auto":
        kind = "number" if is_numeric(gold) else "text"
    if kind == "number":
        pred_value, gold_value = parse_number(prediction), parse_number(gold)
        return pred_value is not None and gold_value is not None and numbers_equal(pred_value, gold_value)
    if kind == "text":
        return normalize_text(prediction) == normalize_text(gold)
    raise ValueError(f"unknown answer kind {kind!r}; choose auto, number or text")
