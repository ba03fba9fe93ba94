"""The child process that talks to Weights & Biases: `python -m autosae.tracking SPEC.json`.

wandb starts threads and a service process and installs signal and exit handlers, so it never
runs in the loop's process: the loop writes what to log (autosae.tracking.runs) to SPEC.json
and starts this with a time limit. Exit 0 when every run is logged; on failure the last line
printed is `error: <why>` and the exit status 1.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    base = Path(spec["dir"])
    # wandb's staging and cache folders default to the home folder: keep them with its runs
    os.environ.setdefault("WANDB_DATA_DIR", str(base / "wandb" / "data"))
    os.environ.setdefault("WANDB_CACHE_DIR", str(base / "wandb" / "cache"))
    import wandb

    urls = []
    for seed in spec["runs"]["seeds"]:
        urls.append({"seed": seed["config"]["seed"], "id": seed["id"], "url": log_run(wandb, spec, seed)})
    sprint = spec["runs"]["sprint"]
    sprint["config"]["seed_runs"] = [{k: v for k, v in u.items() if v is not None} for u in urls]
    url = log_run(wandb, spec, sprint)
    print(f"logged {len(urls) + 1} runs" + (f": {url}" if url else f" offline under {base / 'wandb'}"))
    return 0


def log_run(wandb, spec: dict, run_spec: dict) -> str | None:
    """One run: its config, its history (x axis: training samples), its summary and its
    artifacts; its URL (None offline)."""
    run = wandb.init(
        project=spec["project"],
        entity=spec.get("entity"),
        mode=spec["mode"],
        dir=spec["dir"],
        id=run_spec["id"],
        name=run_spec["name"],
        group=run_spec["group"],
        job_type=run_spec["job_type"],
        config=run_spec["config"],
        resume="allow",  # the same id again (a sprint logged twice) continues its run
        settings=wandb.Settings(console="off", save_code=False, disable_git=True, x_disable_stats=True),
    )
    try:
        if run_spec["history"]:
            run.define_metric("samples")
            run.define_metric("*", step_metric="samples")
        for row in run_spec["history"]:
            run.log(row)
        run.summary.update(run_spec["summary"])
        for art in run_spec["artifacts"]:
            artifact = wandb.Artifact(art["name"], type=art["type"])
            for path in art["files"]:
                artifact.add_file(path)
            run.log_artifact(artifact)
        return run.url
    finally:
        run.finish()


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1]))
    except Exception as exc:  # one line for the loop's status (the traceback stays in the log)
        import traceback

        traceback.print_exc()
        print(f"error: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}", flush=True)
        sys.exit(1)
