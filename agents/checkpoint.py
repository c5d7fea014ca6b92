"""Atomic, checked agent checkpoints: the one save/load path every agent uses.

A checkpoint is a directory of the parts of a `CheckpointContent`: `agent.json` (readable,
and editable by hand as long as the step stays the same), `state.pt`, model directories in
Hugging Face format, extra JSON files, and the manifest `checkpoint.json`: the format, the
step and the size and SHA-256 of every other file (`agent.json` excepted).

Saving writes the whole checkpoint into a temporary sibling directory, fsyncs it, and only
then swaps it in with one atomic `renameat2(RENAME_EXCHANGE)`: a save that is killed or raises
at any point leaves the previous checkpoint as it was (and at most a hidden `.NAME.tmp-*`
sibling, removed by the next save to the same path). It needs room for a second copy, and
hashing reads every file once more (about 1 GB/s) at save and at load, where `Checkpoint`
checks them before anything is built (a checkpoint older than the manifest loads unchecked,
with a warning).
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import os
import shutil
import uuid
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

AGENT_FILE = "agent.json"
STATE_FILE = "state.pt"
MANIFEST_FILE = "checkpoint.json"
FORMAT = 1
"""Version of the layout recorded in the manifest."""

_UNHASHED = frozenset({AGENT_FILE, MANIFEST_FILE})
_INCOMPLETE = "the checkpoint is incomplete; load another checkpoint or start a new run"
_CORRUPT = "the file is truncated or corrupt; load another checkpoint or start a new run"


class CheckpointError(ValueError):
    """A checkpoint is missing, incomplete, corrupt or inconsistent: one line naming the file
    and saying what to do."""


@dataclass
class CheckpointContent:
    """What an agent saves: `save_checkpoint` writes it, `Checkpoint` reads it back."""

    agent: str
    """The agent's class name (in agent.json, with `step`, `config` and `env`)."""
    step: int
    """The agent's `num_steps`, recorded in agent.json, state.pt and the manifest."""
    config: Any
    """The agent's config dataclass (stored as a dict in agent.json)."""
    state: dict[str, Any]
    """What `torch.save` writes to state.pt (the step is added)."""
    models: dict[str, list[Any]]
    """Directory name -> objects with `save_pretrained` (a model and its tokenizer)."""
    files: dict[str, Any] = field(default_factory=dict)
    """Extra JSON files: file name -> value."""
    env: dict[str, Any] | None = None
    """The training env as `{"id": env id, "kwargs": {...}}` (None: unknown), which
    `rlvr-gym eval` and `train --resume` rebuild."""


def save_checkpoint(path: str | os.PathLike, content: CheckpointContent) -> Path:
    """Write `content` to the directory `path` atomically and return `path`. `path` may not
    exist yet, be empty or hold an earlier checkpoint (replaced as a whole); a directory that
    holds something else (a run's metrics) is refused. Raises whatever writing raised, with
    the previous checkpoint untouched."""
    import torch

    path = Path(path)
    if path.is_symlink():  # replace what the link points to, and keep the link
        path = path.resolve()
    if path.exists() and not _replaceable(path):
        raise CheckpointError(f"{path} exists and is not an agent checkpoint (no {AGENT_FILE}); "
                              "save to a new or empty directory, e.g. "
                              f"{path / 'agent'}")
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_siblings(path)
    tmp = _sibling(path, "tmp")
    try:
        tmp.mkdir()
        for name, savers in content.models.items():
            for saver in savers:
                saver.save_pretrained(tmp / name)
        for name, value in content.files.items():
            (tmp / name).write_text(json.dumps(value) + "\n")
        torch.save({**content.state, "num_steps": content.step}, tmp / STATE_FILE)
        config = asdict(content.config) if is_dataclass(content.config) and not isinstance(
            content.config, type) else content.config
        (tmp / AGENT_FILE).write_text(json.dumps(
            {"agent": content.agent, "num_steps": content.step,
             **({"env": content.env} if content.env is not None else {}),
             "config": config}, indent=2) + "\n")
        files = {rel: _digest(tmp / rel) for rel in _files(tmp) if rel not in _UNHASHED}
        (tmp / MANIFEST_FILE).write_text(json.dumps(
            {"format": FORMAT, "step": content.step, "files": files}, indent=2) + "\n")
        _fsync_tree(tmp)
        _install(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # after a swap: the previous checkpoint
    return path


def _replaceable(path: Path) -> bool:
    return path.is_dir() and ((path / AGENT_FILE).exists() or not any(path.iterdir()))


def _sibling(path: Path, kind: str) -> Path:
    return path.with_name(f".{path.name}.{kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def _remove_stale_siblings(path: Path) -> None:
    """Temporary directories of earlier saves to `path` whose process is gone."""
    for stale in path.parent.glob(f".{path.name}.tmp-*"):
        pid = stale.name.rsplit("-", 2)[-2]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def _digest(path: Path) -> dict[str, Any]:
    sha = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
            size += len(block)
    return {"size": size, "sha256": sha.hexdigest()}


def _fsync_tree(root: Path) -> None:
    """fsync every file, then every directory (deepest first), under and including `root`."""
    for p in root.rglob("*"):
        if p.is_file():
            _fsync(p)
    for d in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        _fsync(d)
    _fsync(root)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _install(tmp: Path, path: Path) -> None:
    """Put the complete directory `tmp` at `path`; afterwards `tmp` holds what was at `path`
    (if anything) and the caller deletes it."""
    if not path.exists():
        os.rename(tmp, path)
    elif not _exchange(tmp, path):
        # No atomic exchange: move the old checkpoint aside, then the new one in. Between the
        # two renames there is no checkpoint at `path`; `load` then names the moved-aside one.
        old = _sibling(path, "old")
        os.rename(path, old)
        os.rename(tmp, path)
        os.rename(old, tmp)
    _fsync(path.parent)


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two directories (Linux `renameat2(RENAME_EXCHANGE)`); False where the
    system or the filesystem does not support it."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, f"cannot swap {a} into {b}: {os.strerror(err)}")


class Checkpoint:
    """The checkpoint directory `path` opened for loading, with `saved` its parsed agent.json
    and `step` the step it was saved at. Opening checks that every file of the manifest is
    there with its size and SHA-256 and that agent.json names the manifest's step; a missing,
    corrupt or inconsistent part, then or in a later read, raises a `CheckpointError`.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise CheckpointError(self._missing_message())
        self.saved = read_record(self.path)
        self.step = self.saved["num_steps"]
        manifest = self._manifest()
        if manifest is None:
            warnings.warn(f"{self.path} has no {MANIFEST_FILE} (saved by an older rlvr-gym): its "
                          "parts cannot be checked for consistency; save it again to get a "
                          "checked checkpoint", stacklevel=3)
        else:
            self._check_files(manifest)
            if manifest["step"] != self.step:
                raise CheckpointError(
                    f"{self.path / AGENT_FILE} says step {self.step} but {MANIFEST_FILE} step "
                    f"{manifest['step']}: the files come from different saves; restore agent."
                    "json's num_steps or use a complete checkpoint")

    def config(self, config_cls: type, overrides: Mapping[str, Any]) -> Any:
        """The saved config as `config_cls`, with `overrides` (config fields) applied."""
        known = {f.name for f in fields(config_cls)}
        unknown = set(overrides) - known
        if unknown:
            raise ValueError(f"unknown {config_cls.__name__} fields {sorted(unknown)}; valid: "
                             f"{sorted(known)}")
        unknown = set(self.saved.get("config", {})) - known
        if unknown:
            raise CheckpointError(f"{self.path / AGENT_FILE}: unknown {config_cls.__name__} "
                                  f"fields {sorted(unknown)}; load it with the agent class "
                                  f"that saved it ({self.saved.get('agent')})")
        return config_cls(**{**self.saved.get("config", {}), **overrides})

    def state(self, *keys: str) -> dict[str, Any]:
        """state.pt, checked to hold `keys` and to name the same step as agent.json."""
        import torch

        file = self.path / STATE_FILE
        if not file.is_file():
            raise CheckpointError(f"{file} is missing: {_INCOMPLETE}")
        try:
            state = torch.load(file, weights_only=False)
        except Exception as exc:  # any failure to unpickle means the file is unusable
            raise CheckpointError(f"{file} is unreadable ({type(exc).__name__}: "
                                  f"{_one_line(exc)}): {_CORRUPT}") from exc
        missing = [k for k in keys if not isinstance(state, dict) or k not in state]
        if missing:
            raise CheckpointError(f"{file} lacks {missing}: it was not saved by this agent "
                                  f"class; load it with {self.saved.get('agent')}.load")
        if "num_steps" in state and state["num_steps"] != self.step:
            raise CheckpointError(f"{file} is from step {state['num_steps']} but "
                                  f"{self.path / AGENT_FILE} says step {self.step}: the files "
                                  "come from different saves; use a complete checkpoint")
        return state

    def policy(self, device: str, dtype: str) -> Any:
        """The saved policy (`policy/`) as a `Policy` on `device`."""
        from rlvr_gym.agents.policy import Policy

        directory = self.model_dir("policy")
        if directory is None:
            raise CheckpointError(f"{self.path / 'policy'} is missing or has no config.json: "
                                  f"{_INCOMPLETE}")
        return Policy.from_pretrained(directory, device, dtype)

    def model_dir(self, name: str) -> Path | None:
        """The model directory `name` (e.g. `policy`), or None when it was not saved."""
        directory = self.path / name
        return directory if (directory / "config.json").is_file() else None

    def json_file(self, name: str, hint: str) -> Any:
        """An extra JSON file; `hint` says what to do when it is missing."""
        return _read_json(self.path / name, hint)

    def _manifest(self) -> dict[str, Any] | None:
        file = self.path / MANIFEST_FILE
        if not file.exists():
            return None
        manifest = _read_json(file, "")
        if not (isinstance(manifest, dict) and isinstance(manifest.get("step"), int)
                and isinstance(manifest.get("files"), dict)):
            raise CheckpointError(f"{file} is not a checkpoint manifest (needs 'step' and "
                                  "'files'); use another checkpoint")
        if manifest.get("format") != FORMAT:
            raise CheckpointError(f"{file} has format {manifest.get('format')!r}, this "
                                  f"rlvr-gym reads format {FORMAT}; load it with the rlvr-gym "
                                  "version that saved it")
        return manifest

    def _check_files(self, manifest: dict[str, Any]) -> None:
        for rel, expected in manifest["files"].items():
            file = self.path / rel
            if not file.is_file():
                raise CheckpointError(f"{file} is missing: {_INCOMPLETE}")
            size = file.stat().st_size
            if size != expected.get("size"):
                raise CheckpointError(f"{file} has {size} bytes, {expected.get('size')} were "
                                      "saved: the file is truncated or was replaced; load "
                                      "another checkpoint or start a new run")
            if _digest(file)["sha256"] != expected.get("sha256"):
                raise CheckpointError(f"{file} differs from what was saved (SHA-256 "
                                      "mismatch): it is corrupt or comes from another save; "
                                      "load another checkpoint or start a new run")

    def _missing_message(self) -> str:
        moved = sorted(self.path.parent.glob(f".{self.path.name}.old-*"))
        if moved:
            return (f"{self.path} is missing, but a save that replaced it was interrupted: "
                    f"the previous checkpoint is intact at {moved[-1]}; rename it to "
                    f"{self.path}")
        return (f"{self.path} holds no saved agent (no such directory); pass the directory "
                "given to the agent's save()")


def read_record(path: str | os.PathLike) -> dict[str, Any]:
    """The parsed agent.json of the checkpoint at `path` (a quick look: the other files are not
    checked); `CheckpointError` when it is missing or not an agent record."""
    file = Path(path) / AGENT_FILE
    saved = _read_json(file, "pass the directory given to the agent's save()")
    if not isinstance(saved, dict) or not isinstance(saved.get("num_steps"), int) \
            or not isinstance(saved.get("config", {}), dict):
        raise CheckpointError(f"{file} is not an agent record (needs an integer "
                              "'num_steps' and a 'config' object); restore it from the "
                              "save or use another checkpoint")
    return saved


def _read_json(file: Path, hint: str) -> Any:
    if not file.is_file():
        raise CheckpointError(f"{file} is missing" + (f"; {hint}" if hint else
                                                       ": the checkpoint is incomplete"))
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{file} is not valid JSON ({_one_line(exc)}): the file is "
                              "truncated or corrupt; restore it or use another checkpoint"
                              ) from exc


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 200 else text[:197] + "..."

