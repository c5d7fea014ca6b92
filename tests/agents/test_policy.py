"""The policy layer: sampling, prefixes, stop strings, masks and log-probabilities."""

import logging

import pytest
import torch

from rlvr_gym.agents.policy import SamplingConfig, cross_entropy_on, select_dtype

GREEDY = SamplingConfig(temperature=0.0, max_new_tokens=12)


def test_completion_and_prefix_masks_select_exactly_their_tokens(policy):
    torch.manual_seed(0)
    gens = policy.generate(["12 + 3\n", "7\n"], SamplingConfig(max_new_tokens=6),
                           prefixes=["12 +", ""])
    batch = policy.batch(gens)
    targets = batch.input_ids[:, 1:]
    for i, g in enumerate(gens):
        assert targets[i][batch.completion_mask[i].bool()].tolist() == g.completion_ids
        assert targets[i][batch.prefix_mask[i].bool()].tolist() == g.prefix_ids
    # the prompt is never in either mask
    assert batch.completion_mask[0, :len(gens[0].prompt_ids) - 1].sum() == 0
    assert batch.prefix_mask[1].sum() == 0


def test_generation_continues_from_the_prefix(policy):
    gen = policy.generate(["Compute 1 + 2.\n"], GREEDY, prefixes=["1 + 2 ="])[0]
    assert gen.response == "1 + 2 =" + gen.text
    assert gen.prefix_ids == policy.encode("1 + 2 =")
    # the same context without a prefix, continued by hand, gives the same tokens
    alone = policy.generate(["Compute 1 + 2.\n1 + 2 ="], GREEDY)[0]
    assert alone.completion_ids == gen.completion_ids


def test_left_padded_batch_matches_single_generation(policy):
    prompts = ["Compute 12 + 345.\n", "9\n"]
    batched = policy.generate(prompts, GREEDY)
    single = [policy.generate([p], GREEDY)[0] for p in prompts]
    assert [g.completion_ids for g in batched] == [g.completion_ids for g in single]


def test_generation_prints_no_spurious_attention_mask_warning(policy):
    messages: list[str] = []

    class Record(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    logger, handler = logging.getLogger("transformers.modeling_utils"), Record()
    logging.Logger.warning_once.cache_clear()  # transformers prints it once per process
    logger.addHandler(handler)
    try:
        # Unpadded prompts (transformers then drops the all-ones mask) whose rows end at
        # different steps: the finished rows feed pad tokens, which made transformers warn.
        torch.manual_seed(1)
        gens = policy.generate(["x"] * 8, SamplingConfig(max_new_tokens=30, stop=("1",)))
        assert len({len(g.completion_ids) for g in gens}) > 1
        # the record reaches handlers when it is not the spurious warning
        logger.warning_once("another warning")
    finally:
        logger.removeHandler(handler)
    assert messages == ["another warning"]


def test_stop_string_cuts_the_completion(policy):
    torch.manual_seed(1)
    free = policy.generate(["x"] * 8, SamplingConfig(max_new_tokens=30))
    stop = next(ch for g in free for ch in g.text[3:] if ch.strip())  # a char that occurs
    torch.manual_seed(1)
    cut = policy.generate(["x"] * 8, SamplingConfig(max_new_tokens=30, stop=(stop,)))
    for f, c in zip(free, cut, strict=True):
        if stop in f.text:
            assert c.text == f.text[:f.text.index(stop) + 1]
            assert c.finish_reason == "stop"


def test_max_new_tokens_bounds_the_completion(policy):
    gens = policy.generate(["a"] * 4, SamplingConfig(max_new_tokens=3))
    assert all(len(g.completion_ids) <= 3 for g in gens)
    assert all(g.finish_reason == "length" for g in gens if len(g.completion_ids) == 3
               and policy.tokenizer.eos_token_id not in g.completion_ids)


def test_token_logprobs_match_a_manual_computation(policy):
    gens = policy.generate(["ab\n"], GREEDY)
    batch = policy.batch(gens)
    logp, entropy = policy.token_logprobs(batch, with_entropy=True)
    logits = policy.model(input_ids=batch.input_ids).logits[0, :-1]
    manual = logits.log_softmax(-1).gather(-1, batch.input_ids[0, 1:, None]).squeeze(-1)
    assert torch.allclose(logp[0], manual, atol=1e-5)
    assert torch.all(entropy >= 0)
    # greedy tokens are the arg-max of the logits
    pos = batch.completion_mask[0].bool()
    assert torch.equal(logits[pos].argmax(-1), batch.input_ids[0, 1:][pos])


def test_padding_does_not_change_logprobs(policy):
    short, long = policy.generate(["1\n", "Compute 100 + 200.\n"], GREEDY)
    alone = policy.token_logprobs(policy.batch([short]))[0][0]
    padded = policy.token_logprobs(policy.batch([short, long]))[0][0, :alone.shape[0]]
    mask = policy.batch([short]).completion_mask[0].bool()
    assert torch.allclose(alone[mask], padded[mask], atol=1e-5)


def test_cross_entropy_only_counts_masked_tokens(policy):
    batch = policy.batch(policy.generate(["a\n"], GREEDY, prefixes=["b"]))
    logp, _ = policy.token_logprobs(batch)
    nll = cross_entropy_on(policy, batch, batch.prefix_mask)
    assert nll.item() == pytest.approx(-logp[batch.prefix_mask.bool()].mean().item(), rel=1e-5)


def test_dtype_selection():
    assert select_dtype("cuda", bf16_supported=True) == torch.bfloat16
    assert select_dtype("cuda", bf16_supported=False) == torch.float32
    assert select_dtype("cpu", bf16_supported=True) == torch.float32
    assert select_dtype("cpu", False, "bfloat16") == torch.bfloat16
    with pytest.raises(ValueError, match="dtype must be"):
        select_dtype("cpu", False, "float16")


def test_sampling_config_rejects_bad_values():
    with pytest.raises(ValueError, match="top_p"):
        SamplingConfig(top_p=0.0)
    with pytest.raises(ValueError, match="temperature"):
        SamplingConfig(temperature=-1.0)


def test_given_texts_become_completions_ending_in_eos(policy):
    given = policy.samples(["Compute 1 + 2.\n"], ["\\boxed{3}"], prefixes=["1 + 2 = 3\n"])[0]
    eos = policy.tokenizer.eos_token_id
    assert given.completion_ids == policy.encode("\\boxed{3}") + [eos]
    assert given.response == "1 + 2 = 3\n\\boxed{3}"
    batch = policy.batch([given])
    targets = batch.input_ids[0, 1:]
    assert targets[batch.completion_mask[0].bool()].tolist() == given.completion_ids
    assert targets[batch.prefix_mask[0].bool()].tolist() == policy.encode("1 + 2 = 3\n")


def test_bf16_compute_keeps_fp32_weights_and_finite_logprobs(micro_model_dir):
    from rlvr_gym.agents.policy import Policy

    policy = Policy.from_pretrained(micro_model_dir, device="cpu", dtype="bfloat16")
    assert policy.compute_dtype == torch.bfloat16
    assert next(policy.model.parameters()).dtype == torch.float32
    batch = policy.batch(policy.samples(["1 + 2\n"], ["3"]))
    logp, _ = policy.token_logprobs(batch)
    assert logp.dtype == torch.float32 and torch.isfinite(logp).all()


def test_the_model_shipped_generation_config_does_not_leak_into_sampling(policy):
    torch.manual_seed(0)
    plain = policy.generate(["ab\n"] * 4, SamplingConfig(max_new_tokens=8))
    policy.model.generation_config.repetition_penalty = 50.0
    policy.model.generation_config.top_k = 1
    torch.manual_seed(0)
    again = policy.generate(["ab\n"] * 4, SamplingConfig(max_new_tokens=8))
    assert [g.completion_ids for g in again] == [g.completion_ids for g in plain]
    assert policy.model.generation_config.top_k == 1  # restored after the call
