"""Answer extraction: which part of a response is the final answer."""

from __future__ import annotations

import time

import pytest

from rlvr_gym.verifiers.extract import (
    after_hashes,
    answer_is,
    find_answer,
    last_boxed,
    last_number,
)
from rlvr_gym.verifiers.math import extract_answer


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("so \\boxed{42}.", "42"),
        ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
        ("\\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),
        ("first \\boxed{12}, no wait, \\boxed{13}", "13"),
        ("\\fbox{7}", "7"),
        ("\\boxed 5 apples", "5"),
        ("\\boxed {3}", "3"),
        ("$\\boxed{4}$", "4"),
        ("\\boxed{1} then \\boxed{2", "1"),
        ("\\boxed{", None),
        ("\\boxedfoo{3}", None),
        ("no box here", None),
    ],
)
def test_last_boxed(text: str, expected: str | None) -> None:
    assert last_boxed(text) == expected


def test_last_boxed_is_linear_on_many_unclosed_boxes() -> None:
    hostile = "\\boxed{" * 40_000  # 280,000 characters, every box unclosed
    start = time.perf_counter()
    assert last_boxed(hostile) is None
    assert time.perf_counter() - start < 2.0


def test_after_hashes_takes_the_line_after_the_last_marker() -> None:
    assert after_hashes("work\n#### 1\nmore\n#### 72\n") == "72"
    assert after_hashes("no marker") is None
    assert after_hashes("####   \n") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The answer is 12.", "12"),
        ("The answer is $\\frac{3}{4}$.", "\\frac{3}{4}"),
        ("Final answer: 2.5", "2.5"),
        ("so the final answer is: x = 3", "x = 3"),
        ("**Answer:** 3", "3"),
        ("The final answer is **12**.", "12"),
        ("I have no answer", None),
    ],
)
def test_answer_is(text: str, expected: str | None) -> None:
    assert answer_is(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("she has 1,234 apples", "1,234"),
        ("a loss of -7 points", "-7"),
        ("3/4 of them, that is 2.5", "2.5"),
        ("about 1.5e3 m", "1.5e3"),
        ("roots 2, 3", "3"),
        ("nothing", None),
    ],
)
def test_last_number(text: str, expected: str | None) -> None:
    assert last_number(text) == expected


def test_extract_answer_prefers_box_then_hashes_then_phrase_then_number() -> None:
    assert extract_answer("The answer is 3. \\boxed{4} #### 5") == "4"
    assert extract_answer("The answer is 3.\n#### 5") == "5"
    assert extract_answer("we get 2, so the answer is 3.") == "3"
    assert extract_answer("we get 2 and then 9") == "9"


def test_extract_answer_without_number_fallback() -> None:
    assert extract_answer("we get 2 and then 9", last_number_fallback=False) is None
    assert extract_answer("", last_number_fallback=True) is None


@pytest.mark.parametrize(
    ("text", "expected", "source"),
    [
        # adjacent boxes are one multi-part answer; a later box after reasoning supersedes
        ("so $\\boxed{3}$ and $\\boxed{5}$.", "3, 5", "boxed"),
        ("a = \\boxed{3}, b = \\boxed{5}", "3, 5", "boxed"),
        ("\\boxed{12}. Wait, that is wrong: 7 + 6 = 13, so \\boxed{13}", "13", "boxed"),
        ("\\boxed{\\boxed{4}}", "\\boxed{4}", "boxed"),
        # phrasings, the Minerva format first
        ("Final Answer: The final answer is $\\frac{3}{4}$. I hope it is correct.",
         "\\frac{3}{4}", "phrase"),
        ("**Answer:** $x = 2$", "x = 2", "phrase"),
        ("the answer is: $41$ or $42$.", "41, 42", "phrase"),
        ("Final Answer: The largest $n$ is 34.", "34", "phrase"),
        ("\\boxed{255} so she has $10,455. Final Answer: The final answer is $10,455$.",
         "10,455", "phrase"),
        # answer-only responses: the last math environment, whole
        ("$\\frac{1}{3}$", "\\frac{1}{3}", "math"),
        ("We need $x \\geq 5$", "x \\geq 5", "math"),
        ("The solutions are $-2$, $0$, and $3$.", "-2, 0, 3", "math"),
        ("$$\n2^{5} = 32\n$$", "2^{5} = 32", "math"),
        # the R1-style answer tag, its content read by the same rules
        ("<think>2 + 2 = 4</think> <answer> 4 </answer>", "4", "tag"),
        ("<answer>The answer is $\\frac{1}{2}$.</answer>", "\\frac{1}{2}", "tag"),
        # a short answer-only response without math delimiters is its own answer
        ("x^2+1", "x^2+1", "whole"),
        ("(1, 2)", "(1, 2)", "whole"),
        ("Evelyn.", "Evelyn", "whole"),
        ("I think it's -3.", "-3", "number"),
        ("\\boxed{5", "5", "number"),
        # a bare number written after the last environment, numbers glued to words are not
        ("So $3 \\times 6$ makes 18 apples.", "18", "number"),
        ("Code AZYUK2A", None, None),
        # a garbled box's number is the answer, not the equation's result before it
        ("31 + 535 = 566\n\\boxed0666}", "0666", "number"),
        ("the ratio is \\frac{10}{9}", "\\frac{10}{9}", "number"),
        ("Soucis : 2,74 euros", "2.74", "number"),
    ],
)
def test_find_answer(text: str, expected: str | None, source: str | None) -> None:
    found = find_answer(text)
    assert (found.text, found.source) == (expected, source) if found else expected is None


def test_find_answer_lists_every_box_of_the_tail_for_the_hedging_rules() -> None:
    found = find_answer("\\boxed{8}, hmm, \\boxed{9}? No: \\boxed{10}")
    assert found.boxes == ("8", "9", "10") and found.parts == ("10",)
