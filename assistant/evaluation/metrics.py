"""Scores and tests for `assistant eval`: ANLS, exact/contains match, multiple-choice answer extraction, the
point-in-box check of ScreenSpot, and the paired significance tests (McNemar's exact test, paired bootstrap).

Pure Python (no numpy, no torch): every number here can be checked by hand in a test.
"""

from __future__ import annotations

import math
import random
import re
import string
import unicodedata
from typing import Any, Mapping, Sequence

ANLS_THRESHOLD = 0.5
"""DocVQA's τ: a normalized edit distance at or above it scores 0 (the answer is wrong, not slightly off)."""


# --- text answers ------------------------------------------------------------------------------------------------

def normalize(text: str) -> str:
    """Lower case, unicode NFKC, whitespace collapsed, outer spaces and a final full stop removed."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = " ".join(text.split())
    return text.rstrip(".").strip()


def levenshtein(first: str, second: str) -> int:
    """Edit distance (insertions, deletions, substitutions all cost 1)."""
    if len(first) < len(second):
        first, second = second, first
    previous = list(range(len(second) + 1))
    for i, a in enumerate(first, start=1):
        current = [i]
        for j, b in enumerate(second, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a != b)))
        previous = current
    return previous[-1]


def anls(prediction: str, answers: Sequence[str], threshold: float = ANLS_THRESHOLD) -> float:
    """Average Normalized Levenshtein Similarity of one prediction (DocVQA): the best over the valid answers of
    1 - distance / max(length), or 0 when that normalized distance is at or above `threshold`.

    Compared case-insensitively with outer whitespace removed and inner whitespace collapsed, as the official
    script does."""
    guess = " ".join(prediction.strip().lower().split())
    best = 0.0
    for answer in answers:
        truth = " ".join(str(answer).strip().lower().split())
        longest = max(len(guess), len(truth))
        if longest == 0:
            best = max(best, 1.0)
            continue
        distance = levenshtein(guess, truth) / longest
        best = max(best, 0.0 if distance >= threshold else 1.0 - distance)
    return best


def exact_match(prediction: str, answers: Sequence[str]) -> float:
    """1.0 when the normalized prediction equals one of the normalized answers."""
    guess = normalize(prediction)
    return float(any(guess == normalize(str(answer)) for answer in answers))


def contains_match(prediction: str, answers: Sequence[str]) -> float:
    """1.0 when one normalized answer appears in the normalized prediction as whole words."""
    guess = normalize(prediction)
    for answer in answers:
        truth = normalize(str(answer))
        if truth and re.search(r"(?<!\w)" + re.escape(truth) + r"(?!\w)", guess):
            return 1.0
    return 0.0


TEXT_METRICS = {"exact": exact_match, "contains": contains_match, "anls": anls}


# --- multiple choice ---------------------------------------------------------------------------------------------

_LETTER_PATTERNS = (
    re.compile(r"^\s*[\(\[]?([A-Z])[\)\]]?\s*(?:[.:,)\-]|$)"),  # "B", "B.", "(B)", "B) text", "B: text"
    re.compile(r"^\s*([A-Z])\s+(?=\S)"),  # "B blue" (checked against the option text below)
    re.compile(r"\b(?:answer|option|choice)(?:\s+is)?\s*[:\-]?\s*[\(\[]?([A-Z])[\)\]]?(?![A-Za-z])", re.IGNORECASE),
    re.compile(r"[\(\[]([A-Z])[\)\]]"),  # "... (C) ..."
)


def extract_choice(reply: str, options: Mapping[str, str]) -> str | None:
    """The option letter a free-text reply chooses, or None when it names none (or several, undecided).

    In order: a leading letter ("B", "B.", "(B)", "B) blue"), "answer is B" / "Answer: (B)" / "option B", a
    bracketed letter anywhere, then the option texts: the reply equals one, or mentions exactly one option text
    (the longest wins when one contains another, "dark red" over "red"). "B blue" counts only when "blue" is
    option B's text (it could be the start of a sentence otherwise).
    """
    text = reply.strip()
    if not text:
        return None
    for index, pattern in enumerate(_LETTER_PATTERNS):
        match = pattern.search(text)
        if not match or match.group(1) not in options:
            continue
        letter = match.group(1)
        if index == 1:  # "A blue car": an article unless what follows is that option's own text
            rest = normalize(text[match.end():])
            if not rest.startswith(normalize(options[letter])) or not normalize(options[letter]):
                continue
        return letter
    said = normalize(text).strip(string.punctuation + " ")
    for letter, option in options.items():
        if said == normalize(option).strip(string.punctuation + " "):
            return letter
    found: dict[str, str] = {}
    for letter, option in options.items():
        words = normalize(option)
        if words and re.search(r"(?<!\w)" + re.escape(words) + r"(?!\w)", normalize(text)):
            found[letter] = words
    for letter, words in list(found.items()):  # "dark red" mentioned: "red" is part of it, not a second answer
        if any(other != letter and words in longer and words != longer for other, longer in found.items()):
            del found[letter]
    if len(found) == 1:
        return next(iter(found))
    return None


# --- grounding ---------------------------------------------------------------------------------------------------

def shape_centre(shape: Mapping[str, Any]) -> tuple[float, float] | None:
    """The point a grounding shape (as `rounded_shape_dict` writes it) stands for: a point itself, a box's centre,
    a polygon's vertex mean."""
    kind = shape.get("kind")
    if kind == "point":
        return float(shape["x"]), float(shape["y"])
    if kind == "box":
        return (float(shape["x1"]) + float(shape["x2"])) / 2, (float(shape["y1"]) + float(shape["y2"])) / 2
    if kind == "polygon" and shape.get("points"):
        points = shape["points"]
        return sum(float(p[0]) for p in points) / len(points), sum(float(p[1]) for p in points) / len(points)
    return None


def point_in_box(point: tuple[float, float], box: Sequence[float]) -> bool:
    """Whether (x, y) lies in [x1, y1, x2, y2] (edges included)."""
    x, y = point
    x1, y1, x2, y2 = box
    return x1 <= x <= x2 and y1 <= y <= y2


# --- paired significance -----------------------------------------------------------------------------------------

def mcnemar_exact(only_first: int, only_second: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pairs: items only the first model got right, items only
    the second did. Binomial(n, 1/2) tail doubled, capped at 1; 1.0 when there is no discordant pair."""
    n = only_first + only_second
    if n == 0:
        return 1.0
    k = min(only_first, only_second)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def paired_bootstrap(first: Sequence[float], second: Sequence[float], rounds: int = 2000, seed: int = 0) -> float:
    """Two-sided p-value of a paired bootstrap on the mean difference (second - first): resample the items with
    replacement `rounds` times and count how often the difference's sign flips (or it is zero), doubled, capped
    at 1. Seeded, so the same scores always give the same p-value."""
    if len(first) != len(second):
        raise ValueError("paired scores must have the same length")
    n = len(first)
    if n == 0:
        return 1.0
    deltas = [b - a for a, b in zip(first, second)]
    observed = sum(deltas) / n
    if observed == 0:
        return 1.0
    rng = random.Random(seed)
    against = 0
    for _ in range(rounds):
        total = sum(deltas[rng.randrange(n)] for _ in range(n))
        if (total <= 0 if observed > 0 else total >= 0):
            against += 1
    return min(1.0, 2 * against / rounds)


def significance_note(p_value: float, test: str) -> str:
    """One line for the table: the test, the p-value and what it means at the usual 0.05 level."""
    verdict = "a real difference (p < 0.05)" if p_value < 0.05 else "could be chance (p >= 0.05); evaluate on more items"
    return f"{test}: p = {p_value:.3g}, {verdict}"
