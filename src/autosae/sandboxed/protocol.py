"""The wire between the trusted harness and the variant's process: JSON lines and mapped buffers.

Commands (trusted -> variant), one JSON object a line on the variant's stdin:

    {"cmd": "train", "slot": 0 | 1, "rows": n}   train on rows [0, n) of buffer train<slot>
    {"cmd": "decoder"}                           write decoder_directions() into buffer decoder
    {"cmd": "eval", "rows": n}                   encode eval_in[:n] into eval_latents, eval_recon
    {"cmd": "state"}                             save the module as safetensors in its out folder
    {"cmd": "stop"}

Replies (variant -> trusted), one JSON object a line on the variant's stdout, each checked
against REPLIES by `parse_reply`.

Nothing crosses as a pickle. Tensors go through float32 files that the trusted side creates
at fixed sizes before the variant starts and that both sides map (`map_buffer`), and the
module's state through safetensors files, which hold only tensors. A reply that is not JSON,
is longer than MAX_LINE, or does not match its schema is a failed seed on the trusted side,
never an exception it did not expect.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

MAX_LINE = 4 << 20
"""The longest reply line the trusted side reads (bytes)."""
MAX_TEXT = 20_000
"""The longest string a reply may carry (an error message, an architecture name)."""
FAILURE_KINDS = ("error", "nan", "out_of_memory", "blocked_import")
VARIANT_METRIC_PREFIX = "variant/"
"""Training-log keys of the variant's own metrics (TrainOutput.metrics) start with this, so
that a variant's "loss" never overwrites or passes for the harness's (whose keys have no /)."""
VARIANT_METRICS_PER_ENTRY = 32
"""The most variant metrics one training-log entry carries (the first ones the variant returns)."""


class ProtocolError(ValueError):
    """A reply the trusted side will not accept (the seed fails with this reason)."""


def buffer_shapes(d_in: int, width: int, chunk_rows: int, eval_rows: int) -> dict[str, tuple[int, int]]:
    """Every shared buffer of one variant process and its (rows, columns) of float32."""
    return {
        "train0": (chunk_rows, d_in),
        "train1": (chunk_rows, d_in),
        "eval_in": (eval_rows, d_in),
        "eval_latents": (eval_rows, width),
        "eval_recon": (eval_rows, d_in),
        "decoder": (width, d_in),
    }


def buffer_bytes(shapes: dict[str, tuple[int, int]]) -> int:
    return sum(r * c * 4 for r, c in shapes.values())


def map_buffer(path: Path, shape: tuple[int, int]) -> torch.Tensor:
    """A float32 tensor backed by the file at `path` (shared: writes are seen by the other side).
    torch is imported here, not above: the trusted side reads replies and records (report.record)
    without training, and without torch's start-up."""
    import torch

    return torch.from_file(str(path), shared=True, size=shape[0] * shape[1], dtype=torch.float32).view(shape)


def encode(message: dict) -> bytes:
    return (json.dumps(message, allow_nan=False, separators=(",", ":")) + "\n").encode()


# -- reply schemas ------------------------------------------------------------------------


def _int(v) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ProtocolError(f"expected an integer, got {type(v).__name__}")
    return v


def _num(v) -> int | float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ProtocolError(f"expected a finite number, got {v!r}"[:200])
    return v


def _text(v) -> str:
    if not isinstance(v, str):
        raise ProtocolError(f"expected a string, got {type(v).__name__}")
    return v[:MAX_TEXT]


def _list(item):
    def check(v):
        if not isinstance(v, list):
            raise ProtocolError(f"expected a list, got {type(v).__name__}")
        return [item(x) for x in v]

    return check


def _numbers(v) -> dict[str, int | float]:
    """{name: number}: a training-log entry, a memory report."""
    if not isinstance(v, dict):
        raise ProtocolError(f"expected an object, got {type(v).__name__}")
    return {_text(k)[:100]: _num(x) for k, x in v.items()}


def _optional(check):
    return lambda v: None if v is None else check(v)


def _export(v):
    """The variant's SAELens cfg (plain JSON: it is written to cfg.json as it is)."""
    if not isinstance(v, dict):
        raise ProtocolError("export: expected an object or null")
    return v


def _kind(v) -> str:
    return v if v in FAILURE_KINDS else "error"


REPLIES = {
    "ready": {"architecture": _text, "parameters": _int, "width": _int},
    "trained": {"slot": _int, "logs": _list(_numbers), "integrity": _numbers, "note": _text},
    "decoder": {"shape": _list(_int)},
    "evaluated": {"rows": _int},
    "state": {
        "export": _optional(_export),
        "not_exported": _text,
        "memory": _numbers,
        "lines": _list(_int),
        "integrity": _numbers,
        "note": _text,
    },
    "error": {"kind": _kind, "message": _text},
}


def parse_reply(line: bytes) -> dict:
    """One reply line as a dict with exactly its schema's fields, checked; ProtocolError otherwise."""
    if len(line) > MAX_LINE:
        raise ProtocolError(f"a reply of more than {MAX_LINE} bytes")
    try:
        data = json.loads(line)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"a reply that is not JSON ({str(exc)[:100]})") from None
    if not isinstance(data, dict) or data.get("tag") not in REPLIES:
        raise ProtocolError(f"a reply with no known tag: {line[:120]!r}")
    schema, tag = REPLIES[data["tag"]], data["tag"]
    out = {"tag": tag}
    for name, check in schema.items():
        if name not in data:
            raise ProtocolError(f"a {tag!r} reply without {name!r}")
        try:
            out[name] = check(data[name])
        except ProtocolError as exc:
            raise ProtocolError(f"{tag}.{name}: {exc}") from None
    return out
