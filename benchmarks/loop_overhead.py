"""The loop's own cost per sprint: everything except the agent and the training.

Runs `--sprints` sprints with the scripted agent in a fresh project (real git, real harness,
real reports), and splits each sprint's wall time into the agent's calls, the harness's
counted run (train + score, from results.json) and the rest, which is autosae's overhead:
git branches and worktrees, state writes, the verdict, report.md/report.pdf, the leaderboard
and the merge commit. Baselines are trained (or read from the cache) before timing starts.

    python benchmarks/loop_overhead.py                 # tiny, shortened runs, 3 sprints
    python benchmarks/loop_overhead.py --sprints 5 --samples 600000
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import git
import yaml

from autosae.agents import create_agent
from autosae.config import load_task
from autosae.sprint import gitops
from autosae.sprint.engine import Engine, SprintRequest
from autosae.sprint.project import Project, init_project

FRONT = """---
profile: tiny
seeds: {seeds}
constraints:
  training_samples: {samples}
agent:
  backend: scripted
  options: {{script: script.yaml}}
---
# overhead benchmark
"""


class Timed:
    """Wraps an agent and adds up the time spent in its calls."""

    def __init__(self, agent):
        self.agent, self.seconds = agent, 0.0

    def __getattr__(self, name):
        attr = getattr(self.agent, name)
        if name not in ("propose", "implement", "conclude"):
            return attr

        def call(*args, **kwargs):
            started = time.perf_counter()
            try:
                return attr(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started

        return call


class TimedEngine(Engine):
    """The real engine, with every agent it creates wrapped in a timer."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.timed: list[Timed] = []

    def agent(self, cfg, backend):
        self.timed.append(Timed(super().agent(cfg, backend)))
        return self.timed[-1]

    def agent_seconds(self) -> float:
        return sum(t.seconds for t in self.timed)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sprints", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--samples", type=int, default=204_800, help="training samples per run")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="autosae-overhead-")) / "project"
    init_project(root, profile="tiny", backend="scripted", seeds=args.seeds)
    (root / "TASK.md").write_text(FRONT.format(seeds=args.seeds, samples=args.samples))
    (root / "script.yaml").write_text(
        yaml.safe_dump(
            [
                {
                    "title": f"run {i}",
                    "idea": f"matryoshka copy number {i} " + "z" * 8 * i,
                    "variant": "lista_matryoshka",
                }
                for i in range(args.sprints)
            ]
        )
    )
    create_agent("scripted", script="script.yaml", project=str(root))  # fail early on a bad script
    repo = git.Repo(root)
    repo.git.add("TASK.md", "script.yaml")
    with repo.git.custom_environment(**gitops.env(repo)):
        repo.git.commit("-q", "-m", "benchmark task")
    engine = TimedEngine(Project(root), status=lambda line: print(line, file=sys.stderr))
    cfg = load_task(root / "TASK.md").config
    engine.baselines(cfg, cfg.build_profile(), "cpu")  # cached or trained now, outside the timing
    overheads, fractions = [], []
    for i in range(args.sprints):
        before = engine.agent_seconds()
        started = time.perf_counter()
        state = engine.run(engine.start(SprintRequest()))
        wall = time.perf_counter() - started
        harness = json.loads((root / ".autosae" / "runs" / state.id / "results.json").read_text())["wall_s"]
        agent = engine.agent_seconds() - before
        overhead = wall - harness - agent
        overheads.append(overhead)
        fractions.append(overhead / wall)
        print(f"sprint_{i}_wall_s: {wall:.2f}")
        print(f"sprint_{i}_harness_s: {harness:.2f}")
        print(f"sprint_{i}_agent_s: {agent:.3f}")
        print(f"sprint_{i}_overhead_s: {overhead:.2f}")
    print(f"overhead_per_sprint_s: {statistics.fmean(overheads):.2f}")
    print(f"overhead_fraction_of_sprint: {statistics.fmean(fractions):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
