"""The scripted agent: replays fixed actions, so tests drive whole sprints deterministically.

Sprint n replays action n (modulo the script's length): the action depends only on how many
sprints the project has recorded, so replays survive process restarts and resumes.

An action (every key but `title` optional):
    title, idea, hypothesis, plan, parent, config
    variant:    a reference variant's name (`autosae variants`) or Python source text
    readme:     README.md text (default: built from title, idea, hypothesis and plan)
    conclusion: the conclusion text (default: one line quoting the verdict)
    notebook:   lab-notebook entries as the LLM backends give them: [{section, text, sprints}];
                a cited id "$this" is the sprint itself, "$N" the project's N-th recorded sprint
    fail:       propose | implement | conclude: raise AgentError there
    sleep:      {phase: seconds}, so tests can act while the agent is busy
    wait:       {phase: path}: wait (at most a minute) until the project's file `path` exists,
                so that a test acts at a known point (e.g. `.autosae/STOP`: until a stop arrives)
    cost_usd:   what the action "costs", to exercise budgets
    parts:      the sprint's parts.json (what carries the gain, autosae.sprint.ablation): a list
                written as JSON, or text written as it is
    files:      {name: text}: more files in the sprint folder (an ablation's off_file, say)
    amend:      {pilot_notes, hypothesis?, plan?}: recorded while implementing, as the LLM
                backends' amend_proposal tool records it
    review:     the stuck ladder's step-back review after this many sprints:
                {untested_axes, blind_spots, argument_against} (default: a fixed one)
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import yaml

from autosae.agents.base import AgentContext, AgentError, Conclusion, Proposal


class ScriptedAgent:
    name = "scripted"

    def __init__(self, script: str | Path | list | None = None, project: str | Path | None = None, **_ignored):
        self.cost_usd = 0.0
        if isinstance(script, (str, Path)):
            path = Path(script)
            if not path.is_absolute() and project is not None:
                path = Path(project) / path
            try:
                script = yaml.safe_load(path.read_text())
            except (OSError, yaml.YAMLError) as exc:
                raise AgentError(f"cannot read the script {path}: {exc}") from None
        if not script or not isinstance(script, list) or not all(isinstance(a, dict) for a in script):
            raise AgentError(
                "the scripted agent needs a non-empty list of actions "
                "(TASK.md agent.options.script: a YAML file with a list)"
            )
        self.script = script

    def _action(self, ctx: AgentContext, phase: str) -> dict:
        action = self.script[ctx.sprint_number % len(self.script)]
        time.sleep(float((action.get("sleep") or {}).get(phase, 0)))
        waited = (action.get("wait") or {}).get(phase)
        if waited and ctx.project_root is not None:
            deadline = time.monotonic() + 60
            while not (Path(ctx.project_root) / waited).exists() and time.monotonic() < deadline:
                time.sleep(0.1)
        if action.get("fail") == phase:
            raise AgentError(f"scripted failure in {phase}")
        return action

    def propose(self, ctx: AgentContext, idea: str | None = None) -> Proposal:
        action = self._action(ctx, "propose")
        self.cost_usd += float(action.get("cost_usd", 0.0))
        return Proposal(
            title=idea or action.get("title", "scripted idea"),
            idea=idea or action.get("idea", ""),
            hypothesis=action.get("hypothesis", ""),
            plan=action.get("plan", ""),
            parent=action.get("parent"),
            config=None if idea else action.get("config"),
        )

    def implement(self, proposal: Proposal, sprint_dir: Path, ctx: AgentContext) -> None:
        from autosae.variants import reference_variants

        action = self._action(ctx, "implement")
        source = action.get("variant")
        if source is None:
            raise AgentError("the script gives no variant for this sprint")
        refs = reference_variants()
        if source in refs:
            source = refs[source].read_text()
        sprint_dir.mkdir(parents=True, exist_ok=True)
        (sprint_dir / "variant.py").write_text(source)
        readme = action.get("readme") or (
            f"# {proposal.title}\n\n## Idea\n{proposal.idea}\n\n"
            f"## Hypothesis\n{proposal.hypothesis}\n\n## Plan\n{proposal.plan}\n"
        )
        (sprint_dir / "README.md").write_text(readme)
        for name, text in (action.get("files") or {}).items():
            (sprint_dir / name).write_text(refs[text].read_text() if text in refs else text)
        if action.get("parts") is not None:
            parts = action["parts"]
            (sprint_dir / "parts.json").write_text(parts if isinstance(parts, str) else json.dumps(parts))
        if action.get("amend") is not None and ctx.amend is not None:
            try:
                ctx.amend(action["amend"] if isinstance(action["amend"], dict) else {"pilot_notes": action["amend"]})
            except ValueError as exc:
                raise AgentError(f"amend: {exc}") from None

    def conclude(self, proposal: Proposal, results: dict, verdict: dict, ctx: AgentContext) -> Conclusion:
        action = self._action(ctx, "conclude")
        notebook = _cited(action.get("notebook") or [], ctx)
        if "conclusion" in action:
            return Conclusion(action["conclusion"], notebook=notebook)
        objective = verdict.get("objective", "f1")
        mean = ((results.get("summary") or {}).get(objective) or {}).get("mean")
        shown = "no score" if mean is None else f"{objective.upper()} {mean:.4f}"
        return Conclusion(f"Scripted conclusion: {verdict.get('verdict')} ({shown}).", notebook=notebook)

    def review(self, ctx: AgentContext, reason: str = "") -> dict:
        """The stuck ladder's step-back review: the script's `review` for this point, else a
        fixed one naming what the script has not tried."""
        action = self._action(ctx, "review")
        return action.get("review") or {
            "untested_axes": ["a scripted untested axis"],
            "blind_spots": ["a scripted blind spot"],
            "argument_against": f"{len(ctx.past)} scripted sprints brought no confirmed gain",
        }


def _cited(entries: object, ctx: AgentContext) -> object:
    """The script's notebook entries with `$this` and `$N` (1-based) in `sprints` replaced by
    sprint ids, so that a script can cite sprints whose ids it cannot know."""
    if not isinstance(entries, list):
        return entries

    def sprint(ref: object) -> object:
        if ref == "$this":
            return ctx.sprint_id
        if isinstance(ref, str) and ref[:1] == "$" and ref[1:].isdigit() and 0 < int(ref[1:]) <= len(ctx.recorded):
            return ctx.recorded[int(ref[1:]) - 1]
        return ref

    return [
        {**e, "sprints": [sprint(r) for r in e["sprints"]]}
        if isinstance(e, dict) and isinstance(e.get("sprints"), list)
        else e
        for e in entries
    ]
