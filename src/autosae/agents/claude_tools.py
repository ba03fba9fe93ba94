"""The tools of the `anthropic` backend's conversations (autosae.agents.claude_api runs the
conversations): the schemas the model sees, the implement phase's run_experiment and `finish`
check, the checks on what the model submits with `finish`, and the execution of one tool call.

A tool that fails answers the model with an error (is_error) rather than raising into the
conversation loop: bad arguments, a missing file or a broken tool are the model's to fix.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autosae.agents.base import AgentContext
from autosae.agents.sandbox import Files, ToolError, redact
from autosae.bounded import read_prefix
from autosae.harness.arms import MAX_ARMS, MAX_SEEDS
from autosae.harness.options import MAX_VARIANT_BYTES
from autosae.harness.parts import read_parts
from autosae.harness.quick import FULL_BUDGET_SAMPLES
from autosae.harness.validation import QUICK_SEED_SPAN
from autosae.parents import baseline_error, baseline_parents
from autosae.sprint.notebook import SECTIONS as NOTEBOOK_SECTIONS
from autosae.sprint.notebook import check_entries


def tool(name: str, description: str, properties: dict, required: list[str]) -> dict:
    return {
        "name": name,
        "description": description,
        "input_schema": {"type": "object", "properties": properties, "required": required},
    }


STR = {"type": "string"}
EDITOR = tool(
    "str_replace_based_edit_tool",
    "View a file or folder, create a file, or replace one exact occurrence of a string in a file. "
    "Paths are relative to the worktree; paths outside it are refused.",
    {
        "command": {"type": "string", "enum": ["view", "create", "str_replace"]},
        "path": STR,
        "file_text": STR,
        "old_str": STR,
        "new_str": STR,
        "view_range": {"type": "array", "items": {"type": "integer"}},
    },
    ["command", "path"],
)
VIEW = tool(
    "str_replace_based_edit_tool",
    "View a file or folder (read-only in this phase); autosae/sae/ and "
    "autosae/variants/ are the component library and the reference variants.",
    {
        "command": {"type": "string", "enum": ["view"]},
        "path": STR,
        "view_range": {"type": "array", "items": {"type": "integer"}},
    },
    ["command", "path"],
)
BASH = tool(
    "bash",
    "Run a bash command in the worktree (no network, no credentials, a time limit).",
    {"command": STR},
    ["command"],
)
ARM = {
    "anyOf": [{"type": "string"}, {"type": "object"}],
    "description": 'one arm: "variant" (this sprint\'s), "parent", "baseline:<name>" (a reference variant), '
    '"sprint:<id>" (a past sprint\'s variant) or a path in the worktree; or an object {"arm": one of those, '
    '"options": {knob: number|string|bool} passed to build() as spec.options, "label": a name for the row}',
}
EXPERIMENT = tool(
    "run_experiment",
    "Train and score arms quickly on several quick seeds at once and return a table: per arm, mean ± std (n) of "
    "f1, mcc, precision, recall, l0, dead_latents, explained_variance, and paired deltas against the parent "
    "arm (same seeds) with the paired t-test's p; a thinned training curve per arm (samples, loss, l0, dead "
    "latents, mean over seeds); the variant's own logged metrics; and `run_folder`, a folder of your worktree "
    "(.quick/<n>/) holding each run's results.json and train_log.jsonl. By default: the variant and the "
    f"parent, the profile's full budget and 3 seeds (TASK.md quick.seeds) where the profile has at most {FULL_BUDGET_SAMPLES:,} "
    "training samples (TASK.md quick.full_budget_samples; all of `tiny`, about the time of one counted run), else a tenth of the samples and one "
    "seed. Parent, baseline and past-sprint arms are cached (free when asked again). Uncounted: training "
    "seeds and validation eval samples that no counted run uses, so its numbers differ from the counted "
    "run's; only the counted run decides the verdict.",
    {
        "variant": {"type": "string", "description": "path of the variant arm, default: this sprint's"},
        "arms": {
            "type": "array",
            "items": ARM,
            "description": f'up to {MAX_ARMS} arms; default ["variant", "parent"]',
        },
        "seeds": {"type": "integer", "description": f"quick seeds per arm, 1 to {MAX_SEEDS} (default as above)"},
        "seed": {"type": "integer", "description": f"the first quick seed, 0 to {QUICK_SEED_SPAN - 1} (default 0)"},
        "samples": {"type": "integer", "description": "training samples (default as above)"},
        "profile": {"type": "string", "description": "profile to run on (default: the sprint's; `tiny` is fastest)"},
        "parent": {
            "type": "boolean",
            "description": "without `arms`: train the parent beside (true) or not (false); default: "
            "where cheap or cached",
        },
    },
    [],
)
RESULTS = tool(
    "past_results",
    "The harness's recorded results, read-only. Without `sprint`: every past sprint shown to you "
    "(id, title, verdict, F1 and MCC as mean, std and seeds, parent, the objective's difference "
    "from the parent) and the baselines. With `sprint` (a past sprint's id, `parent` for this "
    "sprint's parent, or baseline:<reference recipe>, e.g. baseline:matryoshka): that run's metrics, mean and "
    "std over seeds and per seed, and its verdict.",
    {"sprint": {"type": "string", "description": "a past sprint's id, `parent`, or baseline:<name>"}},
    [],
)
AMEND = tool(
    "amend_proposal",
    "Record pilot notes beside this sprint's proposal: what your quick runs (run_experiment) showed "
    "and what you changed because of them; optionally the hypothesis and plan as revised. The "
    "original proposal is kept as it was: conclude, the reports and the next proposals show both.",
    {
        "pilot_notes": {"type": "string", "description": "what the pilot runs showed and what changed"},
        "hypothesis": {"type": "string", "description": "the revised hypothesis (optional)"},
        "plan": {"type": "string", "description": "the revised plan (optional)"},
    },
    ["pilot_notes"],
)
RESULTS_BYTES = 4 << 20
"""The most of a recorded results.json or verdict.json that past_results reads."""
FINISH = {
    "propose": tool(
        "finish",
        "Submit this sprint's proposal.",
        {
            "title": STR,
            "idea": STR,
            "hypothesis": STR,
            "plan": STR,
            "parent": STR,
            "origin": {
                "type": "string",
                "description": "where the idea comes from: a paper or method "
                "and its field, a past sprint's result, or your own reasoning",
            },
        },
        ["title", "idea", "hypothesis", "plan", "origin"],
    ),
    "implement": tool(
        "finish", "Declare the implementation done (README.md and variant.py written).", {"summary": STR}, ["summary"]
    ),
    "conclude": tool(
        "finish",
        "Submit the conclusions.",
        {
            "checks": STR,
            "alternatives": {"type": "array", "items": STR},
            "conclusion": STR,
            "next_steps": {"type": "array", "items": STR},
            "notebook": {
                "type": "array",
                "description": "optional entries for the lab notebook, each citing the sprints that are its evidence",
                "items": {
                    "type": "object",
                    "properties": {
                        "section": {"type": "string", "enum": list(NOTEBOOK_SECTIONS)},
                        "text": STR,
                        "sprints": {"type": "array", "items": STR},
                    },
                    "required": ["section", "text"],
                },
            },
        },
        ["checks", "alternatives", "conclusion", "next_steps"],
    ),
    "review": tool(
        "finish",
        "Submit the step-back review (it goes into the lab notebook).",
        {
            "untested_axes": {"type": "array", "items": STR, "description": "directions no sprint has tried"},
            "blind_spots": {"type": "array", "items": STR, "description": "what the evidence cannot yet tell"},
            "argument_against": {
                "type": "string",
                "description": "the strongest argument that the current line of work is a dead end",
            },
        },
        ["untested_axes", "blind_spots", "argument_against"],
    ),
}


@dataclass
class Finished:
    """What `call` returns when the model called `finish` and the phase's check accepted it: the
    phase's result (which may itself be None, hence the wrapper)."""

    value: Any


def call(use: dict, handlers: dict, finish: Callable[[dict], Any]) -> tuple[str, bool, Finished | None]:
    """Run one tool_use block: (the tool_result's text, whether it is an error, Finished when the
    model's `finish` passed the phase's check). What a tool returns or raises is redacted of credentials."""
    name, args = use.get("name"), use.get("input")
    if not isinstance(args, dict):
        return f"malformed tool call: the input of {name!r} must be a JSON object", True, None
    try:
        if name == "finish":
            return "recorded", False, Finished(finish(args))
        if name not in handlers:
            return f"unknown tool {name!r}; the tools are: {', '.join([*handlers, 'finish'])}", True, None
        return redact(handlers[name](args)), False, None
    except ToolError as exc:
        return redact(str(exc)), True, None
    except (OSError, ValueError, TypeError, UnicodeError) as exc:  # the tool broke, not the agent
        return redact(f"{name} failed: {type(exc).__name__}: {exc}"), True, None


def experiment_tool(ctx: AgentContext, files: Files, folder: str) -> Callable[[dict], str]:
    """run_experiment: the quick runs of ctx.experiment, its arguments checked before it starts
    (arm paths resolved inside the worktree, as the file tool resolves them)."""

    def experiment(args: dict) -> str:
        if ctx.experiment is None:
            raise ToolError("run_experiment is not available here")
        variant = files.resolve(args.get("variant") or f"{folder}/variant.py")
        if not variant.is_file():
            raise ToolError(f"{variant.relative_to(files.root)}: no such file; write the variant first")
        samples, seed, seeds, parent = args.get("samples"), args.get("seed", 0), args.get("seeds"), args.get("parent")
        for key, value in (("samples", samples), ("seed", seed), ("seeds", seeds)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ToolError(f"{key}: expected an integer")
        if parent is not None and not isinstance(parent, bool):
            raise ToolError("parent: expected true or false")
        if args.get("profile") is not None and not isinstance(args["profile"], str):
            raise ToolError("profile: expected a profile name")
        arms = args.get("arms")
        if arms is not None and (not isinstance(arms, list) or len(arms) > MAX_ARMS):
            raise ToolError(f"arms: expected a list of at most {MAX_ARMS} arms")
        return json.dumps(
            ctx.experiment(
                variant,
                samples,
                args.get("profile"),
                seed or 0,
                parent,
                seeds=seeds,
                arms=arms,
                resolve_path=files.resolve,
            ),
            indent=1,
            default=float,
        )

    return experiment


def amend_tool(ctx: AgentContext) -> Callable[[dict], str]:
    """amend_proposal: pilot notes recorded by autosae beside the proposal (ctx.amend)."""

    def amend(args: dict) -> str:
        if ctx.amend is None:
            raise ToolError("amend_proposal is not available here")
        try:
            return ctx.amend(args)
        except ValueError as exc:
            raise ToolError(str(exc)) from None

    return amend


def results_tool(ctx: AgentContext, parent: str | None = None) -> Callable[[dict], str]:
    """past_results: what the prompts show of past sprints and baselines, and any one run's full
    record, read from the project's committed sprint folders (only sprints the agent is shown)."""
    from autosae.agents.prompts import honest_stds, results_digest

    shown = {p.id: p for p in ctx.past if p.id != "(refused)"}

    def record(sprint: str) -> dict:
        if sprint == "parent":
            if not parent:
                raise ToolError("this phase has no parent yet")
            sprint = parent
        if sprint.startswith("baseline:"):
            name = sprint.removeprefix("baseline:")
            if name not in ctx.baselines:
                raise ToolError(f"{sprint}: no such baseline; the baselines are: {', '.join(ctx.baselines)}")
            return {"sprint": sprint, "means": ctx.baselines[name]}
        if sprint not in shown:
            raise ToolError(
                f"{sprint}: not a past sprint shown to you; call past_results without `sprint` for the list"
            )
        folder = Path(ctx.project_root or ".") / "sprints" / sprint
        return {
            "sprint": sprint,
            "title": shown[sprint].title,
            "parent": shown[sprint].parent,
            "results": honest_stds(results_digest(read_record(folder / "results.json"))),
            "verdict": honest_stds(read_record(folder / "verdict.json")),
        }

    def results(args: dict) -> str:
        if args.get("sprint"):
            return json.dumps(record(args["sprint"].strip()), indent=1, default=float)
        rows = [
            {
                "id": p.id,
                "title": p.title,
                "verdict": p.verdict,
                "parent": p.parent,
                "f1": p.stat("f1"),
                "mcc": p.stat("mcc"),
                "delta_parent": p.delta_parent,
                "noop": p.noop,
                "held_out": p.held_out,
                "conclusion": p.conclusion,
                "next_step": p.next_step,
                "pilot_notes": p.pilot,
            }
            for p in shown.values()
        ]
        return json.dumps({"past_sprints": rows, "baselines": ctx.baselines}, indent=1, default=float)

    return results


def read_record(path: Path) -> dict:
    """A committed results.json or verdict.json, bounded; {} when missing or unreadable (never a link)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with open(fd, "rb") as f:
            data = json.loads(f.read(RESULTS_BYTES))
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def implemented(sprint_dir: Path, folder: str) -> Callable[[dict], dict]:
    """The implement phase's `finish` check: README.md and a variant.py that compiles are
    written, and parts.json, where there is one, declares parts the ablation can remove."""

    def check(args: dict) -> dict:
        for name in ("README.md", "variant.py"):
            if not (sprint_dir / name).is_file():
                raise ToolError(f"{folder}/{name} is not written yet")
        try:  # read bounded: the file may be a sparse one of any size, or a named pipe
            found = read_prefix(sprint_dir / "variant.py", MAX_VARIANT_BYTES + 1)
        except OSError as exc:
            raise ToolError(f"variant.py cannot be read as a regular file ({exc.strerror or exc})") from None
        if found.cut or found.size > MAX_VARIANT_BYTES:
            raise ToolError(f"variant.py has {found.size:,} bytes; a variant may have at most {MAX_VARIANT_BYTES:,}")
        try:
            compile(found.data, "variant.py", "exec")
        except (SyntaxError, ValueError) as exc:
            raise ToolError(f"variant.py does not compile: {exc}") from None
        _, problem = read_parts(sprint_dir)
        if problem:  # refused now, while it can be fixed, not after the sprint became the new best
            raise ToolError(f"{folder}/{problem}")
        return args

    return check


def check_proposal(args: dict) -> dict:
    for key in ("title", "idea", "hypothesis", "plan", "origin"):
        if not isinstance(args.get(key), str) or not args[key].strip():
            raise ToolError(
                f"{key}: expected a non-empty string"
                + (
                    " (where the idea comes from: a paper or method and its field, a past sprint, your own reasoning)"
                    if key == "origin"
                    else ""
                )
            )
    if args.get("parent") is not None and not isinstance(args["parent"], str):
        raise ToolError(f"parent: expected a sprint id or one of {', '.join(baseline_parents())}")
    if error := baseline_error((args.get("parent") or "").strip()):
        raise ToolError(error)
    return args


def concluded(ctx) -> Callable[[dict], dict]:
    """The conclude phase's `finish` check, which knows the sprints a notebook entry may cite
    (the ledger's, and this sprint's own)."""
    return lambda args: check_conclusion(args, ctx.recorded, ctx.sprint_id)


def check_conclusion(args: dict, recorded: Collection[str] = (), sprint_id: str | None = None) -> dict:
    """Every field that is wrong, named at once (one refusal, one fix)."""
    _, problems = check_entries(args.get("notebook"), recorded, sprint_id)
    wrong = [*problems] + [
        f"{key}: expected a non-empty string (say what you checked and concluded)"
        for key in ("checks", "conclusion")
        if not isinstance(args.get(key), str) or not args[key].strip()
    ]
    for key in ("alternatives", "next_steps"):
        items = args.get(key)
        if not isinstance(items, list) or not items or not all(isinstance(i, str) and i.strip() for i in items):
            wrong.append(f"{key}: expected a non-empty list of strings")
    if wrong:
        raise ToolError("; ".join(wrong))
    return args


def check_review(args: dict) -> dict:
    """The review's `finish`: every field that is wrong, named at once."""
    wrong = [
        f"{key}: expected a list of non-empty strings (an empty list where you have none)"
        for key in ("untested_axes", "blind_spots")
        if not isinstance(args.get(key), list) or not all(isinstance(i, str) and i.strip() for i in args[key])
    ]
    if not isinstance(args.get("argument_against"), str) or not args["argument_against"].strip():
        wrong.append("argument_against: expected a non-empty string")
    if wrong:
        raise ToolError("; ".join(wrong))
    return args


def string(args: dict, key: str) -> str:
    value = args.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ToolError(f"{key}: expected a non-empty string")
    return value
