"""A model of your own from the CLI and in Python: the README's "Your own model" section run as
written (on a random micro Qwen2 in place of the real model, with tiny budgets), the prompt a
model of your own gets, chat templates and system messages, and the mistakes refused."""

import json
import re
import shlex
from pathlib import Path

import gymnasium as gym
import pytest

from rlvr_gym.agents.tiny import TINY_MODEL_DIR
from rlvr_gym.cli import main
from rlvr_gym.envs import PromptFormat

README = Path(__file__).resolve().parents[2] / "README.md"
MODEL = "path/to/Qwen2.5-0.5B-Instruct"
TINY_TRAIN = ["--steps", "1", "--no-progress", "--threads", "1", "--set", "prompts_per_step=2",
              "--set", "group_size=2", "--set", "eval_problems=2", "--set", "eval_samples=2",
              "--set", "eval_k=1,2", "--set", "max_new_tokens=8", "--set", "warmup_steps=0"]
TINY_EVAL = ["--problems", "2", "--samples", "2", "--k", "1", "2", "--max-new-tokens", "8",
             "--no-progress", "--threads", "1"]
SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."

pytest.importorskip("peft", reason="pip install 'rlvr-gym[lora]'")


def section() -> str:
    text = README.read_text(encoding="utf-8")
    return text.split("\n## Your own model\n", 1)[1].split("\n## ", 1)[0]


def commands() -> list[list[str]]:
    """The `rlvr-gym` command lines of the section's shell block, without the program name."""
    block = re.findall(r"```bash\n(.*?)```", section(), re.S)[0]
    return [shlex.split(line)[1:] for line in block.replace("\\\n", " ").splitlines()]


def python_snippets() -> list[str]:
    return re.findall(r"```python\n(.*?)```", section(), re.S)


def adapted(snippet: str, replacements: dict[str, str]) -> str:
    for old, new in replacements.items():
        assert old in snippet, f"the README snippet no longer has {old!r}"
        snippet = snippet.replace(old, new)
    return snippet


def recorded_prompt(agent_dir: Path) -> str | None:
    return json.loads((agent_dir / "agent.json").read_text())["env"]["kwargs"].get("prompt")


def test_the_section_has_its_snippets():
    assert [c[0] for c in commands()] == ["train", "eval", "eval"]
    assert len(python_snippets()) == 2


def test_the_random_model_snippet_builds_a_qwen2_with_a_chat_template(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(python_snippets()[1], {"__name__": "readme"})
    config = json.loads(Path("random-qwen2", "config.json").read_text())
    assert config["model_type"] == "qwen2"
    assert "chat_template" in Path("random-qwen2", "tokenizer_config.json").read_text() \
        or Path("random-qwen2", "chat_template.jinja").exists()


def test_the_commands_train_lora_on_the_chat_prompt_and_evaluate(qwen_model_dir, tmp_path,
                                                                  monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    train, eval_agent, eval_model = [[str(qwen_model_dir) if a == MODEL else a for a in c]
                                     for c in commands()]
    assert main([*train, *TINY_TRAIN]) == 0
    agent = Path("runs/grpo-Arithmetic-v0-seed0/agent")
    saved = json.loads((agent / "agent.json").read_text())["config"]
    assert saved["lora_rank"] == 16 and saved["gradient_checkpointing"] is True
    assert (agent / "policy" / "adapter_config.json").exists()
    prompt = recorded_prompt(agent)
    assert prompt.format(question="Compute 1 + 2.") == (
        f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\nCompute 1 + 2.\n"
        "Give the final answer as \\boxed{answer}.\n<|im_end|>\n<|im_start|>assistant\n")
    capsys.readouterr()
    prompts = []
    for command in (eval_agent, eval_model):
        assert main([*command, *TINY_EVAL]) == 0
        result = json.loads(capsys.readouterr().out)
        assert 0 <= result["accuracy"] <= 1
        prompts.append(result["env_kwargs"]["prompt"])
    assert prompts[0] == prompt  # the agent is evaluated on the prompt it was trained on
    assert prompts[1] == prompt.split("<|im_end|>\n", 1)[1]  # the same without --system


def test_the_python_snippet_trains_on_the_chat_prompt(qwen_model_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = adapted(python_snippets()[0], {
        MODEL: str(qwen_model_dir), "max_new_tokens=512": "max_new_tokens=8",
        "micro_batch_size=8,": "micro_batch_size=8, prompts_per_step=2, group_size=2, "
        "eval_problems=2, eval_samples=2, eval_k=(1, 2), warmup_steps=0,",
        ".learn(100)": ".learn(1, progress_bar=False)"})
    ns: dict = {"__name__": "readme"}
    exec(code, ns)
    observation, info = ns["env"].reset(seed=0)
    assert observation.startswith("<|im_start|>system\n")
    assert info["question"] in observation and ns["agent"].num_steps == 1
    assert ns["agent"].reference is None and Path("runs/qwen-lora/agent/policy").is_dir()


def test_a_model_of_your_own_is_asked_for_a_boxed_answer(qwen_model_dir, tmp_path):
    assert main(["train", "--model", str(qwen_model_dir), "--output", str(tmp_path / "own"),
                 *TINY_TRAIN]) == 0
    assert recorded_prompt(tmp_path / "own" / "agent") is None  # the env's own, boxed one
    env = gym.make("rlvr/Arithmetic-v0")
    assert "\\boxed{answer}" in env.reset(seed=0)[0]
    # the bundled model keeps its bare prompt, named explicitly or not
    assert main(["train", "--model", str(TINY_MODEL_DIR), "--output", str(tmp_path / "tiny"),
                 *TINY_TRAIN]) == 0
    assert recorded_prompt(tmp_path / "tiny" / "agent") == "{question}\n"


@pytest.mark.parametrize("args, message", [
    (["--system", "Be brief."], "--system needs --chat-template"),
    (["--chat-template"], "has no chat template; drop the option"),  # the bundled model's
])
def test_prompt_options_that_cannot_apply_are_refused(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match=message):
        main(["train", *args, *TINY_TRAIN])


def test_a_resumed_run_keeps_its_prompt(qwen_model_dir, tmp_path):
    assert main(["train", "--model", str(qwen_model_dir), "--chat-template", "--output",
                 str(tmp_path / "run"), *TINY_TRAIN]) == 0
    with pytest.raises(SystemExit, match="a resumed run keeps the prompt it was trained with"):
        main(["train", "--resume", str(tmp_path / "run" / "agent"), "--system", "x",
              "--chat-template", *TINY_TRAIN])
    with pytest.raises(SystemExit, match="evaluated with the prompt it was trained with"):
        main(["eval", str(tmp_path / "run" / "agent"), "--chat-template", *TINY_EVAL])


def test_a_chat_prompt_as_a_template_renders_what_the_tokenizer_renders(qwen_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(qwen_model_dir)
    tokenizer.chat_template = "{{ '{' }}" + tokenizer.chat_template  # braces of its own
    chat = PromptFormat("Q: {question} in \\boxed{{}}", SYSTEM, tokenizer)
    question = "Solve {x} + 1 = 2."
    assert chat.as_template().format(question=question) == chat.render(question)
    assert chat.render(question).startswith("{<|im_start|>system\n")
