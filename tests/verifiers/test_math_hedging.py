"""MathVerifier must never pay a hedge, and must still pay the honest answers that look like one.

The rules are in docs/math_verification.md, section 3: several different candidates, a set or
interval that merely contains the reference, `\\pm` against one of its two values, empty boxes,
answers that restate the question, and answers that only match by a last-number reading never
pay. `HEDGING_CASES` is module-level so that the benchmark can count how many of them other
graders (math-verify) pay; `NEAR_MISSES` are the honest look-alikes that must pay, so that the
suite cannot pass by refusing everything.
"""

from __future__ import annotations

from typing import NamedTuple

import pytest

from rlvr_gym.types import Problem
from rlvr_gym.verifiers.math import MathVerifier


class HedgingCase(NamedTuple):
    """One response that must not be paid against its reference (question when it matters)."""

    kind: str
    response: str
    reference: str
    question: str | None = None


HEDGING_CASES: list[HedgingCase] = [
    # three or more different boxed answers, the reference one of them
    HedgingCase("many_boxes", r"It could be $\boxed{40}$, $\boxed{41}$ or $\boxed{42}$.", "42"),
    HedgingCase("many_boxes", "Case 1 gives \\boxed{3}.\n\nCase 2 gives \\boxed{5}.\n\n"
                "Case 3 gives \\boxed{7}.", "5"),
    HedgingCase("many_boxes", r"\boxed{1} \boxed{2} \boxed{3} \boxed{4} \boxed{5} \boxed{6}", "4"),
    HedgingCase("many_boxes", "Attempt: \\boxed{12}. Hmm. \\boxed{13}? Or maybe \\boxed{14}. "
                "I'm not sure.", "12"),
    HedgingCase("many_boxes", r"$\boxed{\frac{1}{2}}$ or $\boxed{\frac{1}{3}}$ or "
                r"$\boxed{\frac{1}{4}}$", r"\frac{1}{3}"),
    HedgingCase("many_boxes", "The answer is \\boxed{8}.\nWait, \\boxed{9}.\nNo, \\boxed{10}.\n"
                "Actually \\boxed{8}.", "8"),
    # a group of boxes or one box listing candidates, for a one-value reference
    HedgingCase("candidate_list", r"The answer is $\boxed{41, 42}$.", "42"),
    HedgingCase("candidate_list", r"The answer is $\boxed{41, 42}$.", "41"),
    HedgingCase("candidate_list", r"The answer is $\boxed{41 \text{ or } 42}$.", "42"),
    HedgingCase("candidate_list", r"So $\boxed{x = 41 \text{ or } x = 42}$.", "41"),
    HedgingCase("candidate_list", r"Either $\boxed{41}$ or $\boxed{42}$.", "42"),
    HedgingCase("candidate_list", r"$\boxed{41}, \boxed{42}$", "41"),
    HedgingCase("candidate_list", r"$\boxed{41 \; \text{and} \; 42}$", "42"),
    HedgingCase("candidate_list", r"$\boxed{\frac{\pi}{3}, \frac{2\pi}{3}}$", r"\frac{\pi}{3}"),
    # "41 or 42" in final-answer phrasings
    HedgingCase("phrasing_or", "The answer is 41 or 42.", "42"),
    HedgingCase("phrasing_or", "Final Answer: The final answer is $41$ or $42$. "
                "I hope it is correct.", "41"),
    HedgingCase("phrasing_or", "Final Answer: The final answer is $41 \\text{ or } 42$. "
                "I hope it is correct.", "42"),
    HedgingCase("phrasing_or", "**Answer:** 41 or 42", "41"),
    HedgingCase("phrasing_or", "Total: 41 or 42 depending on rounding.\n#### 41 or 42", "42"),
    HedgingCase("phrasing_or", "Final answer: either $x = 3$ or $x = 4$", "3"),
    # a set or interval that merely contains the reference
    HedgingCase("containing_set", r"$\boxed{\{1, 2, 3\}}$", "2"),
    HedgingCase("containing_set", r"$\boxed{[0, 10]}$", "5"),
    HedgingCase("containing_set", r"$\boxed{(0, \infty)}$", "3"),
    HedgingCase("containing_set", r"$\boxed{1 \le x \le 10}$", "7"),
    HedgingCase("containing_set", r"$\boxed{x \geq 0}$", "4"),
    HedgingCase("containing_set", r"$\boxed{\mathbb{Z}}$", "12"),
    HedgingCase("containing_set", r"$\boxed{41 < x < 43}$", "42"),
    HedgingCase("containing_set", r"$\boxed{\{40, 41, 42, 43, 44\}}$", "42"),
    HedgingCase("containing_set", r"$\boxed{[1, 3] \cup [5, 9]}$", "6"),
    # \pm against one of its two values
    HedgingCase("plus_minus", r"$\boxed{\pm 3}$", "3"),
    HedgingCase("plus_minus", r"$\boxed{\pm 3}$", "-3"),
    HedgingCase("plus_minus", r"$\boxed{2 \pm 1}$", "3"),
    HedgingCase("plus_minus", r"$\boxed{x = \pm \sqrt{2}}$", r"\sqrt{2}"),
    HedgingCase("plus_minus", r"$\boxed{\mp 4}$", "-4"),
    HedgingCase("plus_minus", r"The answer is $\pm \frac{1}{2}$.", r"\frac{1}{2}"),
    # last-number traps: a wrong answer whose last number is the reference
    HedgingCase("last_number", r"$\frac{1+\sqrt{5}}{2}$", "2"),
    HedgingCase("last_number", r"$\frac{1}{3}$", "3"),
    HedgingCase("last_number", r"The answer is $x^{2}$.", "2"),
    HedgingCase("last_number", r"The length is $\sqrt{17}$.", "17"),
    HedgingCase("last_number", r"$3^4$", "4"),
    HedgingCase("last_number", r"$\boxed{3.42}$", "42"),
    HedgingCase("last_number", r"So the answer is $10^{-3}$.", "3"),
    HedgingCase("last_number", r"Answer: $2\pi r$ where $r = 5$", "5"),
    # empty and whitespace-only boxes
    HedgingCase("empty_box", r"The answer is $\boxed{}$.", "42"),
    HedgingCase("empty_box", r"The answer is $\boxed{ }$.", "42"),
    HedgingCase("empty_box", "The answer is $\\boxed{\\ }$. I think it is 42.", "42"),
    HedgingCase("empty_box", r"$\boxed{\quad}$", "0"),
    HedgingCase("empty_box", r"We computed 42 along the way. $\boxed{\text{}}$", "42"),
    # restating the reference as an inequality or the question
    HedgingCase("restatement", r"$\boxed{x \le 42}$", "42"),
    HedgingCase("restatement", r"$\boxed{3x - 7 = 5}$", "4", r"Solve $3x - 7 = 5$."),
    HedgingCase("restatement", r"$\boxed{6 \times 7}$", "42", r"What is $6 \times 7$?"),
    HedgingCase("restatement", r"$\boxed{2x + 1 > 9}$", "x > 4", r"Solve $2x + 1 > 9$."),
    HedgingCase("restatement", r"$\boxed{\frac{12}{18}}$", r"\frac{2}{3}",
                r"Simplify $\frac{12}{18}$."),
    # all reals, free variables, infinity
    HedgingCase("all_reals", r"$\boxed{x \in \mathbb{R}}$", "7"),
    HedgingCase("all_reals", r"$\boxed{\mathbb{R}}$", "0"),
    HedgingCase("all_reals", r"$\boxed{\text{all real numbers}}$", "7"),
    HedgingCase("free_variable", r"$\boxed{x}$", "5"),
    HedgingCase("free_variable", r"$\boxed{2n}$", "6"),
    HedgingCase("free_variable", r"$\boxed{a + b}$", "10"),
    HedgingCase("free_variable", r"$\boxed{x^2 - x}$", "0"),
    HedgingCase("free_variable", r"$\boxed{k\pi}$", r"\pi"),
    HedgingCase("infinity", r"$\boxed{\infty}$", "100"),
    HedgingCase("infinity", r"The answer is $\boxed{-\infty}$.", "-3"),
    # candidates hidden in text, multiple-choice hedges
    HedgingCase("text_hedge", r"$\boxed{\text{the answer is 42 or 43}}$", "42"),
    HedgingCase("text_hedge", r"$\boxed{\text{the answer is 42 or 43}}$", "43"),
    HedgingCase("choice_hedge", r"$\boxed{(A) \text{ or } (B)}$", r"\text{(A)}"),
    HedgingCase("choice_hedge", r"$\boxed{A, B}$", r"\text{(B)}"),
    HedgingCase("choice_hedge", r"$\boxed{\text{A or B}}$", r"\text{(A)}"),
    HedgingCase("choice_hedge", r"The answer is (A) or (B).", r"\text{(B)}"),
]


class NearMiss(NamedTuple):
    """An honest response that resembles a hedge and must be paid."""

    kind: str
    response: str
    reference: str


NEAR_MISSES: list[NearMiss] = [
    NearMiss("self_correction", "I get \\boxed{12}.\n\nWait, that's wrong: I double counted the "
             "corner. The answer is \\boxed{13}.", "13"),
    NearMiss("multi_part_group", r"So $a = \boxed{3}$ and $b = \boxed{5}$.", "3, 5"),
    NearMiss("multi_part_sentences", "(a) The width is $\\boxed{3}$.\n\n(b) The height is "
             "$\\boxed{5}$.", "3, 5"),
    NearMiss("wrong_then_boxed", "At first I counted 41 handshakes, but I missed the host. "
             "Recounting gives $\\boxed{42}$.", "42"),
    NearMiss("same_box_twice", "The answer is $\\boxed{42}$. Checking: 6 * 7 = 42, so again "
             "$\\boxed{42}$.", "42"),
    NearMiss("plus_minus_reference", r"$\boxed{\pm 3}$", r"\pm 3"),
    NearMiss("set_reference", r"$\boxed{\{1, 2, 3\}}$", r"\{1, 2, 3\}"),
    NearMiss("interval_reference", r"$\boxed{[0, 10]}$", "[0, 10]"),
    NearMiss("minerva", "Final Answer: The final answer is $42$. I hope it is correct.", "42"),
    NearMiss("label", r"$\boxed{x = 5}$", "5"),
    NearMiss("roots_list", r"The roots are $\boxed{2}$ and $\boxed{-3}$.", "2, -3"),
    NearMiss("choice", r"$\boxed{(B)}$", r"\text{(B)}"),
]


def _reference(reference: str, question: str | None) -> str | Problem:
    """The reference as the verifier takes it: a Problem when the question matters."""
    if question is None:
        return reference
    return Problem(id="hedging", question=question, answer=reference)


@pytest.fixture(scope="module")
def verifier():
    """One verifier for the module, closed at the end."""
    v = MathVerifier()
    yield v
    v.close()


@pytest.mark.parametrize("case", HEDGING_CASES, ids=lambda c: c.kind)
def test_hedge_never_pays(verifier: MathVerifier, case: HedgingCase) -> None:
    verdict = verifier.verify(case.response, _reference(case.reference, case.question))
    assert verdict.status.value != "correct", (case, verdict)
    assert verdict.status.value in ("incorrect", "no_answer"), (case, verdict)
    assert verdict.usable, (case, verdict)


@pytest.mark.parametrize("case", NEAR_MISSES, ids=lambda c: c.kind)
def test_honest_look_alike_pays(verifier: MathVerifier, case: NearMiss) -> None:
    verdict = verifier.verify(case.response, case.reference)
    assert verdict.status.value == "correct", (case, verdict)


def test_math_verify_hedging_count() -> None:
    """How many hedges math-verify pays (reported, not asserted); its controls must pay."""
    math_verify = pytest.importorskip("math_verify")

    def pays(response: str, reference: str) -> bool:
        return bool(math_verify.verify(math_verify.parse("$" + reference + "$"),
                                       math_verify.parse(response)))

    # The call convention is right only if plain honest answers pay.
    assert pays(r"$\boxed{42}$", "42")
    assert pays("Final Answer: The final answer is $42$. I hope it is correct.", "42")
    paid = [c for c in HEDGING_CASES if pays(c.response, c.reference)]
    print(f"\nmath-verify pays {len(paid)}/{len(HEDGING_CASES)} hedging cases: "
          f"{sorted({c.kind for c in paid})}")
