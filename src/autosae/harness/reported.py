"""What the variant's process reports about itself, as the trusted side keeps it.

Its replies are checked against their schema and bounds (autosae.sandboxed.protocol); this
module decides what of them is kept, and where, so that our records hold what we measured
and, apart and labelled, what the variant says:

- each seed's train_log.jsonl is written by us (TrainLog): every entry is rebuilt from a fixed
  set of fields, `samples` from our own count of the rows we sent, the worker's loss, L0, dead
  latents and K as checked numbers, the variant's own metrics under `variant/` with cleaned
  names; anything else a reply carries is dropped, and so are entries beyond what an honest
  run logs (counted in the seed's record as `train_log_dropped`);
- the seed record's `reported_by_variant` (reported_fields): its architecture's name, its
  parameter count, its process's peak memory and the lines of variant.py it says ran, each
  bounded and cleaned. The process that reports them is the variant's: any of them can be
  forged, and none is shown as a figure of the harness's.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import TextIO

from autosae.harness.variant_process import SeedFailure
from autosae.sandboxed.protocol import MAX_INT, VARIANT_METRIC_PREFIX, VARIANT_METRICS_PER_ENTRY

LOG_SLACK = 8
"""Training-log entries a seed may write beyond twice what an honest run logs."""
ENTRY_BYTES = 4096
"""The most bytes of one entry we write (6 fields and 32 metrics of 64-character names fit)."""
MAX_NAME = 100
"""The longest architecture name kept."""
METRIC_NAME = re.compile(r"[^A-Za-z0-9_.:/\-]")
MEMORY_KEYS = ("peak_rss_mb", "peak_gpu_mb")


def protocol_failure(message: str) -> SeedFailure:
    return SeedFailure("failed", "protocol", f"the variant's process sent {message}")


def honest_entries(total_steps: int, log_every: int) -> int:
    """The entries the worker logs in `total_steps` steps: every `log_every`-th, the first and the last."""
    return len({1, total_steps} | set(range(log_every, total_steps + 1, log_every)))


class TrainLog:
    """One seed's train_log.jsonl, entries rebuilt by us and bounded in number and bytes."""

    def __init__(self, file: TextIO, batch_size: int, width: int, total_steps: int, log_every: int):
        self.file, self.batch_size, self.width = file, batch_size, width
        self.max_entries = 2 * honest_entries(total_steps, log_every) + LOG_SLACK
        self.max_bytes = self.max_entries * ENTRY_BYTES
        self.entries = self.bytes = self.dropped = 0
        self.last_step = 0

    def add(self, logs: list[dict], first_step: int, last_step: int) -> list[dict]:
        """Write a reply's entries, which must log steps first_step..last_step (the rows of
        the slot it answers) in increasing order; returns the entries as written."""
        kept = []
        for raw in logs:
            entry = self.entry(raw, first_step, last_step)
            line = json.dumps(entry) + "\n"
            if self.entries >= self.max_entries or self.bytes + len(line) > self.max_bytes:
                self.dropped += 1
                continue
            self.file.write(line)
            self.entries, self.bytes = self.entries + 1, self.bytes + len(line)
            kept.append(entry)
        return kept

    def entry(self, raw: dict, first_step: int, last_step: int) -> dict:
        step, l0, dead = raw["step"], raw["l0"], raw["dead"]
        if not isinstance(step, int) or not first_step <= step <= last_step or step <= self.last_step:
            raise protocol_failure(
                f"a log entry for step {step}: the rows it was sent are steps {first_step}-{last_step}, "
                f"after step {self.last_step}"
            )
        if not 0 <= l0 <= self.width or not isinstance(dead, int) or not 0 <= dead <= self.width:
            raise protocol_failure(f"a log entry with l0 {l0} and dead {dead}: the SAE has {self.width} latents")
        self.last_step = step
        entry = {"step": step, "samples": step * self.batch_size, "loss": float(raw["loss"]), "l0": float(l0)}
        entry["dead"] = dead
        if "k" in raw:
            entry["k"] = float(raw["k"])
        own = [(k, v) for k, v in raw.items() if k.startswith(VARIANT_METRIC_PREFIX)]
        for key, value in own[:VARIANT_METRICS_PER_ENTRY]:
            entry.setdefault(VARIANT_METRIC_PREFIX + metric_name(key.removeprefix(VARIANT_METRIC_PREFIX)), float(value))
        return entry


def metric_name(raw: str) -> str:
    """A variant's metric name as we log it: letters, digits and `_.:/-`, at most 64 characters."""
    return METRIC_NAME.sub("_", raw)[:64] or "_"


def clean_name(raw: str) -> str:
    """An architecture's name (a class's __name__, which can be any string) as an identifier
    of at most MAX_NAME characters: no markup, no newline, nothing to render."""
    return re.sub(r"[^A-Za-z0-9_.]", "_", raw)[:MAX_NAME] or "_"


def reported_fields(ready: dict, state: dict, variant: Path) -> dict:
    """The seed record's `reported_by_variant`, from the process's `ready` and `state` replies.
    Executed lines are kept only where variant.py has them (0, the module's entry, to its
    last line); how many it claimed beyond is counted, since no honest tracer reports one."""
    parameters = ready["parameters"]
    if not 0 <= parameters <= MAX_INT:
        raise protocol_failure(f"a parameter count of {parameters}")
    last = len(variant.read_text(errors="replace").splitlines())
    claimed = set(state["lines"])
    lines = sorted(n for n in claimed if 0 <= n <= last)
    out = {
        "architecture": clean_name(ready["architecture"]),
        "parameters": parameters,
        "memory": {
            k: round(float(v), 1)
            for k, v in state["memory"].items()
            if k in MEMORY_KEYS and math.isfinite(v) and 0 <= v <= MAX_INT
        },
        "executed_lines": lines,
    }
    if len(claimed) > len(lines):
        out["executed_lines_outside_file"] = len(claimed) - len(lines)
    return out
