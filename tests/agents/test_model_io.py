"""What a model of your own needs from the policy: generation ends at every end id of the
model's generation config, prompts start with BOS where the tokenizer adds one, and a prompt
that does not fit the context is refused before generating."""

import pytest
import torch
from tokenizers import processors

from rlvr_gym.agents.policy import Policy, SamplingConfig
from rlvr_gym.agents.tiny import build_char_tokenizer

GREEDY = SamplingConfig(temperature=0.0, max_new_tokens=8)


def test_generation_ends_at_the_end_of_turn_id_of_the_generation_config(qwen_model_dir):
    policy = Policy.from_pretrained(qwen_model_dir, device="cpu")
    eos, end_of_turn = (policy.tokenizer.convert_tokens_to_ids(t)
                        for t in ("<|endoftext|>", "<|im_end|>"))
    assert policy.tokenizer.eos_token_id == eos
    assert policy.end_ids == [eos, end_of_turn]
    # an output head that always says end-of-turn: it must end the completion at once
    width, vocab = policy.model.config.hidden_size, policy.model.config.vocab_size
    head = torch.nn.Linear(width, vocab, bias=True)
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    head.bias.data[end_of_turn] = 10.0
    policy.model.lm_head = head
    gen = policy.generate(["Compute 1 + 2."], GREEDY)[0]
    assert gen.completion_ids == [end_of_turn]
    assert gen.finish_reason == "stop" and gen.text == ""


def bos_policy(micro_model_dir):
    """The micro model with a tokenizer that starts every text with BOS (as Llama's do)."""
    policy = Policy.from_pretrained(micro_model_dir, device="cpu")
    tok = build_char_tokenizer()
    tok._tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{tok.bos_token} $A", special_tokens=[(tok.bos_token, tok.bos_token_id)])
    return Policy(policy.model, tok)


def test_prompts_start_with_bos_where_the_tokenizer_adds_one(micro_model_dir, policy):
    with_bos = bos_policy(micro_model_dir)
    bos = with_bos.tokenizer.bos_token_id
    assert with_bos.bos_id == bos and policy.bos_id is None
    gen = with_bos.generate(["12+3"], GREEDY, prefixes=["1"])[0]
    assert gen.prompt_ids == [bos, *with_bos.encode("12+3")]
    assert gen.prefix_ids == with_bos.encode("1")  # only the prompt starts with BOS
    # a prompt that already starts with it (a chat template writing its BOS) gets no second
    templated = with_bos.tokenizer.bos_token + "12+3"
    assert with_bos.generate([templated], GREEDY)[0].prompt_ids == with_bos.encode(templated)
    sample = with_bos.samples(["12+3"], ["15"])[0]
    assert sample.prompt_ids[0] == bos
    # the bundled tokenizer adds none: prompts are encoded as before
    assert policy.generate(["12+3"], GREEDY)[0].prompt_ids == policy.encode("12+3")


def test_a_prompt_over_the_context_is_refused_before_generating(policy):
    assert policy.context_length == 128
    policy.generate(["1" * 80], SamplingConfig(max_new_tokens=48))  # exactly fits
    with pytest.raises(ValueError, match=r"129 tokens, over the model's context of 128.*"
                       r"lower max_new_tokens"):
        policy.generate(["1" * 80], SamplingConfig(max_new_tokens=49))
    with pytest.raises(ValueError, match="longest training sequence"):
        policy.batch(policy.samples(["1" * 100], ["2" * 40]))
