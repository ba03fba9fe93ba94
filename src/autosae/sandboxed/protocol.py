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
is longer than MAX_LINE, does not match its schema or breaks its bounds (keys per object,
items per list, digits per integer) is a failed seed on the trusted side, never an exception
it did not expect. The schema only says what may be read: what the trusted side keeps of a
reply is decided there (autosae.harness.reported).
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
LOG_FIELDS = ("step", "samples", "loss", "l0", "dead")
"""The harness's own fields of a training-log entry, which every entry must carry (`k` is optional)."""
MAX_KEYS = 64
"""The most keys of one object in a reply (a log entry: 6 harness fields and 32 variant metrics)."""
MAX_LOGS = 256
"""The most training-log entries in one reply: a reply covers one slot of CHUNK_BATCHES (64)
steps, and an honest log has at most one entry a step."""
MAX_LIST = 100_000
"""The most items of any other list in a reply (the executed lines of a long variant.py)."""
MAX_INT = 2**53
"""The largest integer magnitude a reply may carry (a float64 holds it exactly)."""


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
    if abs(v) > MAX_INT:
        raise ProtocolError(f"an integer out of range (more than {MAX_INT} in magnitude)")
    return v


def _num(v) -> int | float:
    if isinstance(v, int) and not isinstance(v, bool):
        return _int(v)  # a huge integer is refused before float() could overflow on it
    if not isinstance(v, float) or not math.isfinite(v):
        raise ProtocolError(f"expected a finite number, got {v!r}"[:200])
    return v


def _text(v) -> str:
    if not isinstance(v, str):
        raise ProtocolError(f"expected a string, got {type(v).__name__}")
    return v[:MAX_TEXT]


def _list(item, limit: int = MAX_LIST):
    def check(v):
        if not isinstance(v, list):
            raise ProtocolError(f"expected a list, got {type(v).__name__}")
        if len(v) > limit:
            raise ProtocolError(f"a list of {len(v)} items, more than {limit}")
        return [item(x) for x in v]

    return check


def _object(v) -> dict:
    if not isinstance(v, dict):
        raise ProtocolError(f"expected an object, got {type(v).__name__}")
    if len(v) > MAX_KEYS:
        raise ProtocolError(f"an object of {len(v)} keys, more than {MAX_KEYS}")
    return v


def _numbers(v) -> dict[str, int | float]:
    """{name: number}: a training-log entry, a memory report."""
    return {_text(k)[:100]: _num(x) for k, x in _object(v).items()}


def _log_entry(v) -> dict[str, int | float]:
    entry = _numbers(v)
    missing = [name for name in LOG_FIELDS if name not in entry]
    if missing:
        raise ProtocolError(f"a log entry without {', '.join(map(repr, missing))}")
    return entry


def _optional(check):
    return lambda v: None if v is None else check(v)


def _export(v):
    """The variant's SAELens cfg (plain JSON; autosae.sae.export.validate keeps its known fields)."""
    if not isinstance(v, dict):
        raise ProtocolError("export: expected an object or null")
    return _object(v)


def _kind(v) -> str:
    return v if v in FAILURE_KINDS else "error"


REPLIES = {
    "ready": {"architecture": _text, "parameters": _int, "width": _int},
    "trained": {"slot": _int, "logs": _list(_log_entry, MAX_LOGS), "integrity": _numbers, "note": _text},
    "decoder": {"shape": _list(_int, 8)},
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
    """One reply line as a dict with exactly its schema's fields, checked; ProtocolError otherwise,
    whatever the line holds (an exception of any other kind here would be ours to fix)."""
    if len(line) > MAX_LINE:
        raise ProtocolError(f"a reply of more than {MAX_LINE} bytes")
    try:
        data = json.loads(line)
    except (ValueError, RecursionError) as exc:  # ValueError: also an integer of over 4300 digits
        raise ProtocolError(f"a reply that is not JSON ({one_line(exc)})") from None
    if not isinstance(data, dict) or data.get("tag") not in REPLIES:
        raise ProtocolError(f"a reply with no known tag: {line[:120]!r}")
    schema, tag = REPLIES[data["tag"]], data["tag"]
    out = {"tag": tag}
    for name, check in schema.items():
        if name not in data:
            raise ProtocolError(f"a {tag!r} reply without {name!r}")
        try:
            out[name] = check(data[name])
        except (ProtocolError, ValueError, TypeError, OverflowError, RecursionError) as exc:
            raise ProtocolError(f"{tag}.{name}: {one_line(exc)}") from None
    return out


def one_line(exc: BaseException | str, limit: int = 200) -> str:
    """An exception's message (or a text) as one printable line: it may quote what the variant sent."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return "".join(c if c.isprintable() else "?" for c in text)[:limit]
