"""wandb's offline run files read back: each offline-run-*/run-<id>.wandb is a log of
protobuf Records (wandb_internal.proto) in LevelDB's log format: a 7-byte header (`:W&B`, a
magic number, a version), then 32 KiB blocks of chunks, each with a 7-byte header (CRC,
length, type: full, first, middle, last). wandb 0.31 has no Python reader of its own (its
Go core writes them), so the tests read them here with wandb's own protobuf classes."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

BLOCK = 32 * 1024
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path):
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a wandb run file"
    pos, parts = HEADER, b""
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # a block's tail too short for a chunk header is padding
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        if kind == 0:
            pos += left
            continue
        parts += data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind in (FULL, LAST):
            record = pb.Record()
            record.ParseFromString(parts)
            parts = b""
            yield record


def _key(item) -> str:
    return "/".join(item.nested_key) if item.nested_key else item.key


@dataclass
class Run:
    id: str = ""
    name: str = ""
    group: str = ""
    job_type: str = ""
    project: str = ""
    config: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    artifacts: list[dict] = field(default_factory=list)
    """{name, type, files: {path: size}} per logged artifact."""


def read_run(path: Path) -> Run:
    run = Run()
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            run.id, run.name, run.group, run.job_type, run.project = (
                r.run_id,
                r.display_name,
                r.run_group,
                r.job_type,
                r.project,
            )
            run.config |= {_key(u): json.loads(u.value_json) for u in r.config.update}
        elif kind == "config":
            run.config |= {_key(u): json.loads(u.value_json) for u in record.config.update}
        elif kind == "history":
            row = {_key(i): json.loads(i.value_json) for i in record.history.item}
            run.history.append({k: v for k, v in row.items() if not k.startswith("_")})
        elif kind == "summary":
            run.summary |= {_key(u): json.loads(u.value_json) for u in record.summary.update}
        elif kind == "artifact":
            a = record.artifact
            run.artifacts.append(
                {"name": a.name, "type": a.type, "files": {c.path: c.size for c in a.manifest.contents}}
            )
    run.config.pop("_wandb", None)
    return run


def offline_runs(wandb_dir: Path) -> dict[str, Run]:
    """Every offline run under wandb_dir (the folder wandb names `wandb`), by name."""
    runs = [read_run(p) for p in sorted(wandb_dir.glob("offline-run-*/run-*.wandb"))]
    return {r.name: r for r in runs}
