"""`PromptText`: the observation space of the reasoning envs, a Gymnasium `Text` space whose
batches `gymnasium.make_vec(..., vectorization_mode="async")` returns as the prompts.

Gymnasium's `AsyncVectorEnv` passes observations through shared memory by default. It reads the
shared buffer once, when the vector env is built, and returns that object at every `reset` and
`step`: for a `Box` a numpy view that follows the buffer, for a `Text` a tuple of strings decoded
from the still-empty buffer, so every observation would be `max_length` tab characters (the
first character of the charset). `PromptText` registers its own reader with Gymnasium's
`read_from_shared_memory`: a `TextBatch` that decodes the buffer when it is read, so the async
vector env returns what the sync one does, with no option to pass.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, overload

import numpy as np
from gymnasium import spaces
from gymnasium.vector.utils import read_from_shared_memory


class PromptText(spaces.Text):
    """`gymnasium.spaces.Text` whose shared-memory batch is read when the vector env returns
    it (see the module docstring); everything else is `Text`'s."""


class TextBatch(Sequence[str]):
    """The `n` strings in an `AsyncVectorEnv`'s shared buffer of a `PromptText`, decoded when
    read. `copy.deepcopy` (what `AsyncVectorEnv` returns with its default `copy=True`) gives
    the plain tuple of strings that `SyncVectorEnv` returns; with `copy=False` the env returns
    this live batch, which the next `step` overwrites."""

    def __init__(self, space: PromptText, buffer: Any, n: int) -> None:
        self._rows = np.frombuffer(buffer.get_obj(), dtype=np.int32).reshape(n, space.max_length)
        # Gymnasium's `flatten` writes each character's index in `character_list` and pads with
        # len(character_list); the code points of the characters, padding left out, are the text.
        self._codes = np.array([ord(c) for c in space.character_list], dtype="<u4")

    def _decode(self, row: np.ndarray) -> str:
        indices = row[row < len(self._codes)]
        return self._codes[indices].tobytes().decode("utf-32-le")

    def strings(self) -> tuple[str, ...]:
        """The batch as it is now in the buffer."""
        return tuple(self._decode(row) for row in self._rows)

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[str, ...]: ...

    def __getitem__(self, index: int | slice) -> str | tuple[str, ...]:
        if isinstance(index, slice):
            return self.strings()[index]
        return self._decode(self._rows[index])

    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self) -> Iterator[str]:
        return iter(self.strings())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, TextBatch):
            other = other.strings()
        return isinstance(other, tuple) and self.strings() == other

    __hash__ = None  # type: ignore[assignment]  # mutable: it follows the buffer

    def __deepcopy__(self, memo: dict[int, Any]) -> tuple[str, ...]:
        return self.strings()

    def __repr__(self) -> str:
        return f"TextBatch({self.strings()!r})"


@read_from_shared_memory.register(PromptText)
def _read_prompt_text(space: PromptText, shared_memory: Any, n: int = 1) -> TextBatch:
    return TextBatch(space, shared_memory, n)
