"""The offline recipe agent: a search over autosae.sae's components that needs no API key.

A configuration is a normalised dict (levels, detach, frequency sort, K schedule, LISTA,
TERM). Each sprint starts from the best configuration so far (the Matryoshka baseline at
first) and changes one setting, trying the seed write-up's findings first, skipping changes
that already failed to help from the same starting point, and never repeating a
configuration. When every single change has been tried it changes two, then samples at
random. It is deterministic for a given seed.
"""

from __future__ import annotations

import itertools
import json
import random
import re
from pathlib import Path

import jinja2

from autosae.agents.base import AgentContext, AgentError, Conclusion, PastSprint, Proposal

LEVEL_DIVISORS = {1: [1], 2: [8, 1], 3: [8, 2, 1], 4: [32, 8, 2, 1], 5: [128, 32, 8, 2, 1]}
CHOICES: dict[str, list] = {
    "levels": [1, 2, 3, 4, 5],
    "detach_inner": [False, True],
    "sort_by_frequency": [False, True],
    "k_start": [1.0, 1.5, 2.0, 2.4, 3.0, 4.0],
    "k_fraction": [0.25, 0.5, 0.75, 1.0],
    "lista_iterations": [0, 1, 2, 3],
    "lista_eta": [0.1, 0.3, 0.5],
    "term_tilt": [0.0, 1e-3, 2e-3, 5e-3, 1e-2],
}
FAMILY = {
    "levels": "matryoshka",
    "detach_inner": "matryoshka",
    "sort_by_frequency": "matryoshka",
    "k_start": "k schedule",
    "k_fraction": "k schedule",
    "lista_iterations": "encoder",
    "lista_eta": "encoder",
    "term_tilt": "loss",
}
"""The component family of each setting, for exploration sprints."""
BASELINE_CONFIGS = {
    "matryoshka": {
        "levels": 4,
        "detach_inner": False,
        "sort_by_frequency": False,
        "k_start": 1.0,
        "k_fraction": None,
        "lista_iterations": 0,
        "lista_eta": None,
        "term_tilt": 0.0,
    },
    "batchtopk": {
        "levels": 1,
        "detach_inner": False,
        "sort_by_frequency": False,
        "k_start": 1.0,
        "k_fraction": None,
        "lista_iterations": 0,
        "lista_eta": None,
        "term_tilt": 0.0,
    },
}
PRIOR = [  # the seed's findings first, in the order they paid off there
    ("k_start", 2.4),
    ("detach_inner", True),
    ("lista_iterations", 1),
    ("term_tilt", 2e-3),
    ("sort_by_frequency", True),
    ("k_start", 2.0),
    ("k_start", 3.0),
    ("k_fraction", 0.5),
    ("lista_eta", 0.5),
    ("lista_eta", 0.1),
    ("term_tilt", 5e-3),
    ("term_tilt", 1e-3),
    ("levels", 5),
    ("levels", 3),
    ("k_start", 1.5),
    ("k_start", 4.0),
    ("k_fraction", 0.75),
    ("lista_iterations", 2),
]
WHY = {
    "k_start": "Starting with more active latents lets more of them receive gradient early and find "
    "features before the L0 budget tightens (the seed's largest single gain).",
    "k_fraction": "How long K takes to reach its target trades early exploration against time spent "
    "training at the final sparsity.",
    "detach_inner": "Detaching the inner Matryoshka levels stops their reconstruction loss from pulling "
    "outer latents towards general directions, which the seed found reduces absorption.",
    "sort_by_frequency": "Sorting latents by firing frequency puts the most common features in the inner "
    "levels, where the nested losses expect them.",
    "lista_iterations": "A LISTA correction step on the residual lets latents explain away each other, "
    "which one linear encoder cannot (the seed's one-step LISTA).",
    "lista_eta": "The LISTA step size sets how strongly the residual correction moves the pre-activations.",
    "term_tilt": "TERM's tilted mean weights badly reconstructed samples more, pushing latents towards "
    "rare features that a plain mean ignores.",
    "levels": "The number of nested levels sets how strongly the dictionary is organised coarse to fine.",
}
KEYWORDS = [  # user ideas -> changes (a regex and the setting it implies)
    (r"no matryoshka|plain batch ?top ?k|\bbatchtopk\b", {"levels": 1}),
    (r"lista|iterative encoder|encoder step", {"lista_iterations": 1}),
    (r"\bterm\b|tilt", {"term_tilt": 2e-3}),
    (r"detach", {"detach_inner": True}),
    (r"frequen|sort", {"sort_by_frequency": True}),
    (r"decreas|anneal|schedul|linear k|k schedule", {"k_start": 2.4}),
]
TEMPLATES = Path(__file__).resolve().parents[1] / "templates" / "recipe"


def normalise(config: dict) -> dict:
    c = {**BASELINE_CONFIGS["matryoshka"], **config}
    c = {key: c[key] for key in BASELINE_CONFIGS["matryoshka"]}
    if c["levels"] == 1:
        c["detach_inner"] = c["sort_by_frequency"] = False
    c["k_start"] = float(c["k_start"])
    c["k_fraction"] = None if c["k_start"] == 1.0 else float(c["k_fraction"] or 1.0)
    c["lista_eta"] = None if not c["lista_iterations"] else float(c["lista_eta"] or 0.3)
    c["term_tilt"] = float(c["term_tilt"] or 0.0)
    return c


def config_key(config: dict) -> str:
    return json.dumps(normalise(config), sort_keys=True)


def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def changes(parent: dict, config: dict) -> list[str]:
    """The settings that differ, in canonical order (ledger rows store keys sorted)."""
    a, b = normalise(parent), normalise(config)
    return [k for k in a if a[k] != b[k]]


def render_variant(
    config: dict, title: str = "recipe variant", idea: str = "", parent: str = "", parent_config: dict | None = None
) -> str:
    c = normalise(config)
    uses = [
        name
        for name, on in (
            ("LinearK", c["k_start"] != 1.0),
            ("LISTA", c["lista_iterations"] > 0),
            ("TERM", c["term_tilt"] > 0),
        )
        if on
    ]
    return (
        _env()
        .get_template("variant.py.j2")
        .render(
            config=c,
            title=title,
            idea=idea,
            parent=parent or "baseline:matryoshka",
            uses=uses,
            divisors=LEVEL_DIVISORS[c["levels"]],
            changes=changes(parent_config or c, c),
        )
    )


def describe(field: str, value) -> str:
    match field:
        case "k_start":
            return "constant K" if value == 1.0 else f"decreasing K from {value:g}x the target"
        case "k_fraction":
            return f"K schedule over {value:.0%} of training"
        case "detach_inner":
            return "detached inner levels" if value else "inner levels with gradient"
        case "sort_by_frequency":
            return "levels sorted by firing frequency" if value else "unsorted levels"
        case "lista_iterations":
            return "no LISTA step" if value == 0 else f"{value}-step LISTA encoder"
        case "lista_eta":
            return f"LISTA step size {value:g}"
        case "term_tilt":
            return "plain mean loss" if value == 0 else f"TERM loss with tilt {value:g}"
        case "levels":
            return "a plain BatchTopK (one level)" if value == 1 else f"{value} Matryoshka levels"
        case _:
            raise ValueError(f"unknown setting {field!r}")


def summarise(config: dict) -> str:
    """A configuration as its differences from the Matryoshka baseline, e.g. "5 Matryoshka
    levels + 1-step LISTA encoder"."""
    fields = changes(BASELINE_CONFIGS["matryoshka"], config)
    shown = [
        f
        for f in fields
        if not (f == "lista_eta" and "lista_iterations" in fields and config[f] == 0.3)
        and not (f == "k_fraction" and "k_start" in fields and config[f] == 1.0)
    ]
    return " + ".join(describe(f, config[f]) for f in shown) or "the Matryoshka baseline"


def _apply(config: dict, updates: dict) -> dict:
    return normalise({**config, **updates})


class RecipeAgent:
    name = "recipe"

    def __init__(self, seed: int | None = None, **_ignored):
        self.seed = seed
        self.cost_usd = 0.0

    # -- ideation ---------------------------------------------------------------------------

    def _start(self, ctx: AgentContext) -> tuple[dict, str]:
        if ctx.best is not None and ctx.best.config:
            return normalise(ctx.best.config), ctx.best.id
        return normalise(BASELINE_CONFIGS["matryoshka"]), "baseline:matryoshka"

    def _penalties(self, ctx: AgentContext) -> dict[tuple[str, str], float]:
        """(start config, changed setting) pairs that did not help before, by how badly."""
        configs = {p.id: p.config for p in ctx.past if p.config}
        configs.update({f"baseline:{n}": c for n, c in BASELINE_CONFIGS.items()})
        cost = {"worse": 2.0, "failed": 3.0, "no change": 1.0, "inconclusive": 0.5}
        out: dict[tuple[str, str], float] = {}
        for p in ctx.past:
            parent = configs.get(p.parent or "")
            if not p.config or parent is None:
                continue
            for field in changes(parent, p.config):
                key = (config_key(parent), field)
                out[key] = out.get(key, 0.0) + cost.get(p.verdict, 0.0) + (1.0 if p.noop else 0.0)
        return out

    def _gains(self, start: dict, ctx: AgentContext) -> dict[str, tuple[float, dict]]:
        """Single changes already tried from `start` (sprints whose parent had exactly the
        start's configuration): {setting: (objective gain over that parent, config)} for the
        best value of each setting, significant or not."""
        means = {p.id: getattr(p, ctx.objective) for p in ctx.past}
        means.update({f"baseline:{n}": m.get(ctx.objective) for n, m in ctx.baselines.items()})
        configs = {p.id: p.config for p in ctx.past if p.config}
        configs.update({f"baseline:{n}": c for n, c in BASELINE_CONFIGS.items()})
        start_key = config_key(start)
        out: dict[str, tuple[float, dict]] = {}
        for p in ctx.past:
            mine, theirs = getattr(p, ctx.objective), means.get(p.parent or "")
            parent_config = configs.get(p.parent or "")
            if (
                not p.config
                or mine is None
                or theirs is None
                or p.noop
                or parent_config is None
                or config_key(parent_config) != start_key
            ):
                continue
            fields = changes(start, p.config)
            if len(fields) == 1 or fields in (["k_start", "k_fraction"], ["lista_iterations", "lista_eta"]):
                gain = mine - theirs
                if fields[0] not in out or gain > out[fields[0]][0]:
                    out[fields[0]] = (gain, p.config)
        return out

    def _combination(self, start: dict, ctx: AgentContext, tried: set[str]) -> tuple[dict, list[str]] | None:
        """Once the main single changes from `start` have been tried, the union of those that
        raised the objective (even without significance): promising parts often add up."""
        gains = self._gains(start, ctx)
        good = [f for f, (gain, _) in sorted(gains.items(), key=lambda kv: -kv[1][0]) if gain > 0]
        if len(gains) < 4 or len(good) < 2:
            return None
        for n in range(len(good), 1, -1):
            config = dict(start)
            for field in good[:n]:
                config.update({k: v for k, v in gains[field][1].items() if k in changes(start, gains[field][1])})
            config = normalise(config)
            if config_key(config) not in tried:
                return config, changes(start, config)
        return None

    def _candidates(self, start: dict, ctx: AgentContext) -> list[tuple[dict, list[str]]]:
        rng = random.Random(f"{self.seed if self.seed is not None else ctx.seed}:{ctx.sprint_number}")
        tried = {config_key(p.config) for p in ctx.past if p.config} | {
            config_key(c) for c in BASELINE_CONFIGS.values()
        }
        penalties = self._penalties(ctx)
        gains = self._gains(start, ctx)
        start_key = config_key(start)
        single = []
        for field, values in CHOICES.items():
            for value in values:
                config = _apply(start, {field: value})
                if config_key(config) in tried or config == start:
                    continue
                rank = PRIOR.index((field, value)) if (field, value) in PRIOR else len(PRIOR) + rng.random() * 10
                score = rank + 6.0 * penalties.get((start_key, field), 0.0) + rng.random() * 1.5
                if gains.get(field, (0.0,))[0] > 0:  # a setting that helped: try its other values sooner
                    score -= 8.0
                single.append((score, config, [field]))
        single.sort(key=lambda item: item[0])
        out = [(c, f) for _, c, f in single]
        combo = self._combination(start, ctx, tried)
        if combo is not None:
            out.insert(0, combo)
        if out:
            return out
        double = []
        for (f1, v1s), (f2, v2s) in itertools.combinations(CHOICES.items(), 2):
            for v1, v2 in itertools.product(v1s, v2s):
                config = _apply(start, {f1: v1, f2: v2})
                if config_key(config) not in tried and config != start:
                    double.append((config, [f1, f2]))
        rng.shuffle(double)
        if double:
            return double
        everything = [normalise(dict(zip(CHOICES, values))) for values in itertools.product(*CHOICES.values())]
        rest = {config_key(c): c for c in everything if config_key(c) not in tried}
        return [(rest[k], changes(start, rest[k])) for k in sorted(rest, key=lambda _: rng.random())]

    def propose(self, ctx: AgentContext, idea: str | None = None) -> Proposal:
        start, parent = self._start(ctx)
        if idea is None and ctx.explore:
            return self._explore(ctx)
        if idea is not None:
            config = self._from_idea(idea, start)
            fields = changes(start, config) or list(config)
            return self._proposal(idea, start, parent, config, fields, ctx, title=idea)
        candidates = self._candidates(start, ctx)
        if not candidates:
            raise AgentError("every configuration of the component library has been tried")
        config, fields = candidates[0]
        return self._proposal(None, start, parent, config, fields, ctx)

    def _explore(self, ctx: AgentContext) -> Proposal:
        """An exploration sprint: from the Matryoshka baseline, a change in a component family
        that the best does not use (any family while nothing beats the baselines)."""
        start, parent = normalise(BASELINE_CONFIGS["matryoshka"]), "baseline:matryoshka"
        used = set()
        if ctx.best is not None and ctx.best.config:
            used = {FAMILY[f] for f in changes(start, normalise(ctx.best.config))}
        candidates = self._candidates(start, ctx)
        far = [(c, f) for c, f in candidates if not {FAMILY[x] for x in f} & used] or candidates
        if not far:
            raise AgentError("every configuration of the component library has been tried")
        rng = random.Random(f"explore:{self.seed if self.seed is not None else ctx.seed}:{ctx.sprint_number}")
        config, fields = rng.choice(far[:6])
        return self._proposal(None, start, parent, config, fields, ctx)

    def _from_idea(self, idea: str, start: dict) -> dict:
        text = idea.lower()
        updates: dict = {}
        for pattern, change in KEYWORDS:
            if re.search(pattern, text):
                updates.update(change)
        numbers = {
            m.group(1): float(m.group(2))
            for m in re.finditer(
                r"(eta|tilt|levels?|iterations?|steps?|from|start)\s*(?:=|of|to)?\s*([0-9.]+(?:e-?\d+)?)x?", text
            )
        }
        for key, value in numbers.items():
            if key == "eta":
                updates.update(
                    lista_iterations=updates.get("lista_iterations", start["lista_iterations"]) or 1, lista_eta=value
                )
            elif key == "tilt":
                updates["term_tilt"] = value
            elif key.startswith("level"):
                updates["levels"] = int(value)
            elif key.startswith(("iteration", "step")) and "lista_iterations" in updates:
                updates["lista_iterations"] = int(value)
            elif key in ("from", "start") and "k_start" in updates:
                updates["k_start"] = value
        if not updates:
            raise AgentError(
                f"the recipe agent cannot implement {idea!r}: it understands changes to "
                f"levels, detach, frequency sort, a decreasing K, LISTA (eta, iterations) and "
                f"TERM (tilt); use an LLM backend for other ideas"
            )
        bad = [k for k, v in updates.items() if k in ("levels",) and v not in CHOICES[k]]
        if bad:
            raise AgentError(f"the recipe agent supports 1 to 5 Matryoshka levels, not {updates['levels']}")
        return _apply(start, updates)

    def _proposal(
        self,
        idea: str | None,
        start: dict,
        parent: str,
        config: dict,
        fields: list[str],
        ctx: AgentContext,
        title: str | None = None,
    ) -> Proposal:
        shown = [
            f
            for f in fields
            if not (f == "lista_eta" and "lista_iterations" in fields)
            and not (f == "k_fraction" and "k_start" in fields)
        ]
        what = "; ".join(describe(f, config[f]) for f in shown)
        title = title or what[0].upper() + what[1:]
        if not parent.startswith("baseline:") and title != idea:  # say what it builds on
            title += " on " + summarise(start)
        text = idea or f"Change {parent}'s configuration to use {what}."
        hypothesis = " ".join(WHY[f] for f in fields) + (
            f" So {ctx.objective.upper()} should rise above the parent's by more than the noise between seeds."
        )
        plan = (
            f"Start from {parent} and change only {', '.join(fields)} "
            f"({'; '.join(f'{f}: {start[f]} -> {config[f]}' for f in fields)}). Train with the task's seeds "
            f"under the benchmark's constraints; the change counts only if {ctx.objective.upper()} beats "
            f"the parent at the task's significance and the per-seed scores differ from the parent's "
            f"(otherwise the change was a no-op)."
        )
        return Proposal(title=title, idea=text, hypothesis=hypothesis, plan=plan, parent=parent, config=config)

    # -- implementation ---------------------------------------------------------------------

    def implement(self, proposal: Proposal, sprint_dir: Path, ctx: AgentContext) -> None:
        if proposal.config is None:
            raise AgentError("the recipe agent implements only its own configurations")
        parent_config = self._parent_config(proposal.parent, ctx)
        config = normalise(proposal.config)
        sprint_dir.mkdir(parents=True, exist_ok=True)
        (sprint_dir / "variant.py").write_text(
            render_variant(config, proposal.title, proposal.idea, proposal.parent or "", parent_config)
        )
        (sprint_dir / "README.md").write_text(
            _env()
            .get_template("README.md.j2")
            .render(
                title=proposal.title,
                idea=proposal.idea,
                hypothesis=proposal.hypothesis,
                plan=proposal.plan,
                parent=proposal.parent,
                config=config,
                parent_config=parent_config,
                changes=changes(parent_config, config),
                seed=self.seed if self.seed is not None else ctx.seed,
            )
        )

    def _parent_config(self, parent: str | None, ctx: AgentContext) -> dict:
        name = (parent or "").removeprefix("baseline:")
        if name in BASELINE_CONFIGS:
            return normalise(BASELINE_CONFIGS[name])
        for p in [*ctx.past, *([ctx.best] if ctx.best else [])]:
            if p.id == parent and p.config:
                return normalise(p.config)
        return normalise(BASELINE_CONFIGS["matryoshka"])

    # -- conclusions ------------------------------------------------------------------------

    def conclude(self, proposal: Proposal, results: dict, verdict: dict, ctx: AgentContext) -> Conclusion:
        return Conclusion(conclusion_text(proposal, results, verdict, ctx.past))


def _pm(stat: dict | None) -> str:
    """`0.7810 ± 0.0060`, or `0.7810 ± not measurable (n = 1)` from a single seed."""
    from autosae.report.format import fmt_pm

    return fmt_pm(stat, 4, missing="no score")


def conclusion_text(proposal: Proposal, results: dict, verdict: dict, past: list[PastSprint]) -> str:
    obj = verdict.get("objective", "f1")
    name = obj.upper()
    v = verdict.get("verdict", "failed")
    summary = results.get("summary") or {}
    parent = verdict.get("parent") or {}
    lines = [f"**What changed.** {proposal.idea}", ""]
    if v == "failed" or not summary.get(obj):
        lines += [
            f"**Result.** The run failed: {results.get('reason') or verdict.get('reason')}. "
            f"Nothing can be concluded about the idea itself; the failure is in how it was built or "
            f"trained. Next: check the worker log in the report before retrying this configuration."
        ]
        return "\n".join(lines)
    stat = summary[obj]
    delta, p = verdict.get("delta_parent"), verdict.get("p_value")
    floor = verdict.get("noise_floor_note") or (
        None if verdict.get("noise_floor") is None else f"{verdict['noise_floor']:.4f}"
    )
    lines.append(
        f"**Result.** {name} {_pm(stat)} over {stat.get('n')} seeds against the parent "
        f"`{parent.get('id')}` at {_pm(parent)}: "
        + (f"{delta:+.4f}" if delta is not None else "no difference computed")
        + (f", Welch p = {p:.3g}" if p is not None else "")
        + (f", noise floor {floor}." if floor is not None else ".")
    )
    other = "mcc" if obj == "f1" else "f1"
    lines.append(
        f"{other.upper()} is {_pm(summary.get(other))}; L0 {_pm(summary.get('l0'))}, dead latents "
        f"{_pm(summary.get('dead_latents'))}, explained variance {_pm(summary.get('explained_variance'))}."
    )
    for key, label in (("best", "the best so far"),):
        ref = verdict.get(key)
        if ref and ref.get("mean") is not None and verdict.get("delta_best") is not None:
            lines.append(f"Against {label} (`{ref['id']}`, {ref['mean']:.4f}): {verdict['delta_best']:+.4f}.")
    for base, stats in (verdict.get("baselines") or {}).items():
        mean = ((stats or {}).get(obj) or {}).get("mean")
        if mean is not None:
            lines.append(f"Against the {base} baseline ({mean:.4f}): {stat['mean'] - mean:+.4f}.")
    lines.append("")
    if verdict.get("noop"):
        lines.append(
            f"**Interpretation.** This is a no-op: {verdict.get('noop_reason')}. The configuration "
            f"change did not reach the trained SAE, so it says nothing about the idea."
        )
    elif v == "improved":
        lines.append(
            f"**Interpretation.** The change helps beyond seed noise (p < {verdict.get('alpha')}). "
            f"Alternative explanations: with few seeds a lucky draw remains possible, and the gain may "
            f"depend on the other settings of this configuration or on the short training run; "
            f"a held-out model would confirm it." + (" It is the new best." if verdict.get("new_best") else "")
        )
    elif v == "worse":
        lines.append(
            "**Interpretation.** The change hurts beyond seed noise; the recipe agent will not build "
            "on it. It may still help in combination with settings it interacts with (for example "
            "a K schedule with LISTA), which a later sprint could test."
        )
    elif v == "no change":
        lines.append(
            "**Interpretation.** The difference is within the noise floor: the change is either "
            "irrelevant on this benchmark or too small to see with these seeds. It is not a finding."
        )
    else:
        lines.append(
            "**Interpretation.** The difference exceeds the noise floor but the seeds cannot confirm "
            "it. More seeds would settle it; until then it is not a finding."
        )
    tried = sum(1 for s in past if s.config) + 1
    lines += [
        "",
        f"**Next.** {'Build on this configuration' if verdict.get('new_best') else 'Keep the best configuration'}"
        f" and change another setting ({tried} configurations tried so far).",
    ]
    return "\n".join(lines)
