"""Fixtures shared by the test folders."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def wandb_offline(tmp_path, monkeypatch) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """W&B in offline mode with its files under a temporary WANDB_DIR; returns a reader of the
    runs written there, oldest first, each `{"dir", "id", "project", "name", "config",
    "history", "exited"}` (dir: the run's folder in WANDB_DIR/wandb; history: the numbers of
    every `log` call with their `_step`; exited: the run was finished)."""
    wandb = pytest.importorskip("wandb",
                                reason='W&B tests need wandb: pip install "rlvr-gym[wandb]"')
    directory = tmp_path / "wandb-dir"
    directory.mkdir()
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(directory))
    monkeypatch.setenv("WANDB_SILENT", "true")

    def runs() -> list[dict[str, Any]]:
        # wandb's service process may still be writing a finished run's last records
        deadline = time.monotonic() + 30
        while True:
            # offline-run-<start time>-<id>, with -1, -2, ... for a resumed run's repeats
            files = sorted(directory.glob("wandb/offline-run-*/*.wandb"),
                           key=lambda path: path.parent.name)
            found = [_offline_run(path) for path in files]
            if all(run["exited"] for run in found) or time.monotonic() > deadline:
                return found
            time.sleep(0.1)

    yield runs
    wandb.teardown()  # W&B keeps its settings (WANDB_DIR) per process until torn down


def _offline_run(path: Path) -> dict[str, Any]:
    """The run in an offline `.wandb` file, parsed with wandb's own record schema. The file is
    W&B's transaction log: a 7-byte header (`:W&B`, magic, version), then the records in the
    LevelDB log format (32 KiB blocks; each chunk a 7-byte header of CRC (4 bytes), length (2,
    little-endian) and type (1 whole record, 2 first, 3 middle, 4 last chunk))."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B transaction log"
    run: dict[str, Any] = {"dir": path.parent.name, "config": {}, "history": [],
                           "exited": False}
    position, pending = 7, b""
    while position + 7 <= len(data):
        if 32768 - position % 32768 < 7:  # a block's tail too short for a header is padding
            position += 32768 - position % 32768
            continue
        length, kind = int.from_bytes(data[position + 4:position + 6], "little"), \
            data[position + 6]
        pending += data[position + 7:position + 7 + length]
        position += 7 + length
        if kind not in (1, 4):
            continue
        record = wandb_internal_pb2.Record()
        record.ParseFromString(pending)
        pending = b""
        kind_name = record.WhichOneof("record_type")
        if kind_name == "run":
            run.update(id=record.run.run_id, project=record.run.project,
                       name=record.run.display_name)
            run["config"].update(_items(record.run.config.update))
        elif kind_name == "config":
            run["config"].update(_items(record.config.update))
        elif kind_name == "history":
            run["history"].append(_items(record.history.item))
        elif kind_name == "exit":
            run["exited"] = True
    return run


def _items(items: Any) -> dict[str, Any]:
    return {item.key or "/".join(item.nested_key): json.loads(item.value_json)
            for item in items if (item.key or item.nested_key[0]) != "_wandb"}
