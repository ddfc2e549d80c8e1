"""The numbers `assistant eval` reports, checked against values computed by hand."""

from __future__ import annotations

import pytest

from assistant.evaluation.metrics import (
    anls,
    contains_match,
    exact_match,
    extract_choice,
    levenshtein,
    mcnemar_exact,
    paired_bootstrap,
    point_in_box,
    shape_centre,
)

OPTIONS = {"A": "red", "B": "green", "C": "dark red", "D": "yellow"}


@pytest.mark.parametrize(
    ("prediction", "answers", "expected"),
    [
        ("1 May 1990", ["1 may 1990"], 1.0),  # case and outer spaces do not count
        ("  J.  Smith ", ["J. Smith"], 1.0),  # inner whitespace collapsed
        ("1 May 199", ["1 May 1990"], 0.9),  # 1 edit over 10 characters
        ("J. Smyth", ["J. Smith"], 0.875),  # 1 edit over 8
        ("abc", ["abcd"], 0.75),
        ("ab", ["abcd"], 0.0),  # normalized distance 0.5 reaches the threshold: 0, not 0.5
        ("xyz", ["abc"], 0.0),
        ("J. Smyth", ["John Smith", "J. Smith"], 0.875),  # the best of several valid answers
        ("", [""], 1.0),
    ],
)
def test_anls(prediction: str, answers: list[str], expected: float) -> None:
    assert anls(prediction, answers) == pytest.approx(expected)


def test_levenshtein() -> None:
    assert levenshtein("kitten", "sitting") == 3
    assert levenshtein("", "abc") == 3 and levenshtein("abc", "abc") == 0


def test_exact_and_contains() -> None:
    assert exact_match("Red.", ["red"]) == 1.0
    assert exact_match("red square", ["red"]) == 0.0
    assert contains_match("It is a red square.", ["red"]) == 1.0
    assert contains_match("It is reddish.", ["red"]) == 0.0  # whole words only


@pytest.mark.parametrize(
    ("reply", "letter"),
    [
        ("B", "B"),
        ("B.", "B"),
        ("(D)", "D"),
        ("D) yellow", "D"),
        ("The answer is B.", "B"),
        ("Answer: (D)", "D"),
        ("I think option B fits best", "B"),
        ("green", "B"),  # the option text itself
        ("It looks yellow to me", "D"),
        ("dark red", "C"),  # "red" is part of "dark red": one answer, not two
        ("B green", "B"),
        ("A cat sits on the mat", None),  # an article, not option A
        ("red or green", None),  # two options named: undecided
        ("purple", None),
        ("", None),
        ("E", None),  # not an option
    ],
)
def test_extract_choice(reply: str, letter: str | None) -> None:
    assert extract_choice(reply, OPTIONS) == letter


def test_mcnemar_exact_by_hand() -> None:
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(0, 5) == pytest.approx(2 / 32)  # both tails of Binomial(5, 1/2) at 0
    assert mcnemar_exact(1, 9) == pytest.approx(2 * 11 / 1024)  # (C(10,0) + C(10,1)) / 2^10, doubled
    assert mcnemar_exact(3, 3) == 1.0  # capped


def test_paired_bootstrap() -> None:
    same = [0.2, 0.5, 0.9]
    assert paired_bootstrap(same, same) == 1.0
    assert paired_bootstrap([0.1] * 8, [0.6] * 8) == 0.0  # every resample keeps the sign
    mixed_a, mixed_b = [0.0, 1.0, 0.5, 0.2, 0.9], [0.1, 0.8, 0.7, 0.2, 1.0]
    p = paired_bootstrap(mixed_a, mixed_b)
    assert 0.0 < p <= 1.0 and p == paired_bootstrap(mixed_a, mixed_b)  # seeded: the same every time
    with pytest.raises(ValueError):
        paired_bootstrap([1.0], [1.0, 0.0])


def test_shape_centres_and_boxes() -> None:
    assert shape_centre({"kind": "point", "x": 3, "y": 4}) == (3.0, 4.0)
    assert shape_centre({"kind": "box", "x1": 0, "y1": 0, "x2": 10, "y2": 20}) == (5.0, 10.0)
    assert shape_centre({"kind": "polygon", "points": [[0, 0], [4, 0], [4, 4], [0, 4]]}) == (2.0, 2.0)
    assert point_in_box((10, 20), [10, 20, 30, 40]) and not point_in_box((9.9, 20), [10, 20, 30, 40])
