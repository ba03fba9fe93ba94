"""Experiment tracking: each recorded sprint logged to Weights & Biases when TASK.md's
`tracking.wandb` asks for it (runs.py says what is logged).

It runs in the trusted orchestrator once the sprint is recorded, never in a sandbox, so
neither the agent nor the variant ever holds the W&B key. wandb itself runs in a child
process (`python -m autosae.tracking SPEC`), under a time limit and with its output in
.autosae/wandb.log: it starts threads and a service and installs handlers that the loop must
not carry, and tracking is a courtesy: a failure, a timeout or a missing wandb is one status
line, and the sprint and the loop go on. With tracking off nothing is imported or started.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from autosae.errors import AutosaeError
from autosae.jsonio import write_json
from autosae.settings import TrackingSettings

LOG = "wandb.log"
"""wandb's output, in the project's .autosae/ folder."""
INSTALL = "pip install 'autosae[wandb]'"


def log_sprint(
    tracking: TrackingSettings,
    root: Path,
    project_id: str,
    sprint_id: str,
    say: Callable[[str], None],
) -> bool:
    """Log the recorded sprint `sprint_id` of the project at `root` to W&B, if TASK.md asks;
    whether it was logged. Never raises for tracking's sake: `say` gets one line on failure."""
    settings = tracking.wandb
    if settings is None:
        return False
    if importlib.util.find_spec("wandb") is None:
        say(f"tracking is off: wandb is not installed ({INSTALL})")
        return False
    from autosae.tracking.runs import sprint_runs

    private = root / ".autosae"
    try:
        spec = {
            "project": settings.project,
            "entity": settings.entity,
            "mode": settings.mode,
            "dir": str((root / settings.dir) if settings.dir else private),
            "runs": sprint_runs(root, project_id, sprint_id),
        }
        path = private / "tracking" / f"{sprint_id}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, spec)
        problem = run_child(path, private / LOG, settings.timeout_s)
    except AutosaeError as exc:
        problem = str(exc)
    except Exception as exc:  # a record we cannot read, a child we cannot start: never the sprint's failure
        problem = f"{type(exc).__name__}: {exc}"
    if problem:
        say(f"not logged to W&B: {problem}")
        return False
    where = f"W&B project {settings.project}" if settings.mode == "online" else f"{Path(spec['dir']) / 'wandb'}"
    runs = len(spec["runs"]["seeds"]) + 1
    say(f"{runs} run{'s' if runs > 1 else ''} logged to {where} ({settings.mode})")
    return True


def run_child(spec: Path, log: Path, timeout_s: float) -> str | None:
    """Run the wandb child on `spec`, its output appended to `log`; None when it logged
    everything, else why not in one line. Past `timeout_s` its whole process group is killed."""
    with open(log, "a") as out:
        out.write(f"--- {spec.stem}\n")
        out.flush()
        start = out.tell()
        proc = subprocess.Popen(
            [sys.executable, "-m", "autosae.tracking", str(spec)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=spec.parent,
            start_new_session=True,  # its own group: a timeout kills wandb's service too
        )
        try:
            code = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return f"wandb took more than {timeout_s:g} s and was stopped (see .autosae/{LOG})"
    if code == 0:
        return None
    with open(log, errors="replace") as f:
        f.seek(start)
        errors = [line.strip() for line in f if line.startswith("error: ")]
    why = errors[-1].removeprefix("error: ") if errors else f"the wandb process exited with status {code}"
    return f"{why} (see .autosae/{LOG})"
