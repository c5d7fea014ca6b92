"""`TokenLevel`: a reasoning env seen one token at a time, with numeric spaces that classic RL
libraries such as stable-baselines3 can train on (they cannot use `Text` spaces).

The observation is a `Box` of integer token ids (prompt, then what has been generated, padded);
the action is one token id (`Discrete(vocab_size)`). At end-of-sequence or at the length limit
the generated text is sent to the inner env, which verifies it and gives the reward. A `Box` of
ids is used rather than `MultiDiscrete`, which SB3 would one-hot into length x vocab inputs.
"""

from __future__ import annotations

import string
from typing import Any, Protocol, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

DIGITS_AND_OPERATORS = "0123456789+-*/=(). "


class TokenCodec(Protocol):
    """What `TokenLevel` needs from a tokenizer."""

    vocab_size: int
    pad_id: int
    eos_id: int

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...


class CharTokenizer:
    """A character vocabulary: id 0 is padding, 1 is end-of-sequence, then one id per character.

    Characters outside the vocabulary are dropped when encoding, so a small vocabulary
    (the default: digits and operators) keeps a prompt like "Compute 3 + 4." as " 3 + 4." and
    the policy's action space small.
    """

    pad_id = 0
    eos_id = 1

    def __init__(self, chars: str = DIGITS_AND_OPERATORS) -> None:
        if len(set(chars)) != len(chars) or not chars:
            raise ValueError("CharTokenizer needs a non-empty string of distinct characters")
        self.chars = chars
        self._ids = {c: i + 2 for i, c in enumerate(chars)}
        self.vocab_size = len(chars) + 2

    @classmethod
    def printable(cls) -> CharTokenizer:
        """All printable ASCII characters: enough for any rlvr prompt, larger action space."""
        return cls("".join(dict.fromkeys(string.printable)))

    def encode(self, text: str) -> list[int]:
        return [self._ids[c] for c in text if c in self._ids]

    def decode(self, ids: list[int]) -> str:
        out = []
        for i in ids:
            if i == self.eos_id:
                break
            if i >= 2:
                out.append(self.chars[i - 2])
        return "".join(out)


class HFTokenCodec:
    """Adapts a Hugging Face tokenizer to `TokenCodec` (its pad id falls back to eos)."""

    def __init__(self, tokenizer: Any) -> None:
        if tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer has no eos_token_id; TokenLevel needs one to end "
                             "a response")
        self.tokenizer = tokenizer
        self.vocab_size = len(tokenizer)
        self.eos_id = int(tokenizer.eos_token_id)
        pad = tokenizer.pad_token_id
        self.pad_id = self.eos_id if pad is None else int(pad)

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def decode(self, ids: list[int]) -> str:
        if self.eos_id in ids:
            ids = ids[: ids.index(self.eos_id)]
        return self.tokenizer.decode(ids, skip_special_tokens=True)


def as_codec(tokenizer: Any) -> TokenCodec:
    """A `CharTokenizer`/`TokenCodec` as is; a Hugging Face tokenizer through `HFTokenCodec`."""
    if tokenizer is None:
        return CharTokenizer()
    if hasattr(tokenizer, "eos_id") and hasattr(tokenizer, "vocab_size"):
        return tokenizer
    if hasattr(tokenizer, "eos_token_id"):
        return HFTokenCodec(tokenizer)
    raise ValueError("tokenizer must be a CharTokenizer, a TokenCodec or a Hugging Face "
                     f"tokenizer, got {type(tokenizer).__name__}")


class TokenLevel(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """One token per step over a text env.

    Args:
        env: a text env such as `gym.make("rlvr/Arithmetic-v0")`.
        tokenizer: a `CharTokenizer` (default: digits and operators), another `TokenCodec`,
            or a Hugging Face tokenizer.
        max_length: length of the observation: prompt tokens plus generated tokens.
        max_new_tokens: most tokens in one response (None: whatever fits in `max_length`).

    Rewards are 0 until the response ends; then the inner env's reward. `info` of the final
    step carries the inner env's info (with the `verdict`) and the decoded `response`.
    """

    def __init__(self, env: gym.Env, tokenizer: Any = None, max_length: int = 32,
                 max_new_tokens: int | None = None) -> None:
        # Recorded so that `gym.make(env.spec)` can rebuild the wrapped env (check_env does).
        gym.utils.RecordConstructorArgs.__init__(self, tokenizer=tokenizer, max_length=max_length,
                                                 max_new_tokens=max_new_tokens)
        super().__init__(env)
        if max_length < 2:
            raise ValueError(f"max_length must be at least 2, got {max_length}")
        if max_new_tokens is not None and max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        self.codec = as_codec(tokenizer)
        self.max_length = max_length
        self.max_new_tokens = max_new_tokens
        self.observation_space = spaces.Box(0, self.codec.vocab_size - 1, shape=(max_length,),
                                            dtype=np.int64)
        self.action_space = spaces.Discrete(self.codec.vocab_size)
        self._context: list[int] = []
        self._generated: list[int] = []

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        text, info = self.env.reset(seed=seed, options=options)
        self._start_turn(text)
        return self._observation(), info

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        token = int(action)
        if not 0 <= token < self.codec.vocab_size:
            raise ValueError(f"action {token} outside Discrete({self.codec.vocab_size})")
        self._generated.append(token)
        room = self.max_length - len(self._context)
        limit = room if self.max_new_tokens is None else min(room, self.max_new_tokens)
        if token != self.codec.eos_id and len(self._generated) < limit:
            return self._observation(), 0.0, False, False, {}
        response = self.codec.decode(self._generated)
        text, reward, terminated, truncated, info = self.env.step(response)
        info = {**info, "response": response}
        if not (terminated or truncated):  # multi-turn: the feedback is the next prompt
            self._start_turn(text)
        return self._observation(), reward, terminated, truncated, info

    def _start_turn(self, text: str) -> None:
        ids = self.codec.encode(text)
        if len(ids) >= self.max_length:
            raise ValueError(f"the prompt takes {len(ids)} tokens, leaving no room in "
                             f"max_length={self.max_length}; raise max_length or use a shorter "
                             "prompt template (e.g. prompt='{question}')")
        self._context, self._generated = ids, []

    def _observation(self) -> np.ndarray:
        obs = np.full(self.max_length, self.codec.pad_id, dtype=np.int64)
        ids = (self._context + self._generated)[: self.max_length]
        obs[: len(ids)] = ids
        return obs
