"""The demo job: make every registered env, answer with a scripted solver and print the
verified rewards. Run with `python -m rlvr_gym.demo` (or `make demo`)."""

from __future__ import annotations

import gymnasium as gym

import rlvr_gym


def scripted_answers(info: dict) -> dict[str, str]:
    """Three answers a grader must tell apart: the reference solution, a wrong one, none."""
    return {
        "reference solution": info["solution"],
        "wrong answer": "I think the answer is \\boxed{-12345}.",
        "no answer": "Let me think about this.",
    }


def main() -> None:
    for env_id in rlvr_gym.ENV_IDS:
        print(f"\n{env_id}")
        try:
            env = gym.make(env_id)
        except ImportError as exc:  # an id of an optional package that is not installed
            print(f"  skipped: {exc}")
            continue
        info = env.reset(seed=0)[1]
        for name, response in scripted_answers(info).items():
            env.reset(seed=0)
            _, reward, _, _, step_info = env.step(response)
            verdict = step_info["verdict"]
            print(f"  {name:<20} reward={float(reward):.1f}  {verdict.status.value:<9} "
                  f"({verdict.reason})")
        print("  question:", info["question"].replace("\n", " ")[:90])
        env.close()


if __name__ == "__main__":
    main()
