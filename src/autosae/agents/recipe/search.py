"""The recipe agent's search: Optuna's TPE over RecipeConfig's space, asked and told by hand.

The ledger is the source of truth. Before each proposal the study is synced from the ledger's
sprints in this setting (each recorded configuration is a trial with its objective; a failed
sprint is a failed trial, which TPE ignores; the two baselines are trials too), so a deleted
study file is rebuilt and a study that disagrees with the ledger is rebuilt from it. The study
lives in the project's private .autosae/ folder as an Optuna journal, which several processes
(resumed loops, parallel lanes) may append to at once.

The seed write-up's known-good single changes go first (enqueued, each applied once to the best
configuration of its time, so that gains compound); TPE proposes after them. The sampler's seed
is the agent's seed and the sprint number, so a proposal depends on the seed and the ledger only.
"""

from __future__ import annotations

import itertools
import warnings
from pathlib import Path

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from autosae.agents.base import AgentContext, PastSprint
from autosae.agents.recipe.config import BASELINE_CONFIGS, CHOICES, DEPENDS, config_key, main_changes, normalise

KNOWN_GOOD = [("k_start", 2.4), ("detach_inner", True), ("lista_iterations", 1), ("term_tilt", 2e-3)]
"""The seed write-up's single changes that paid off, in the order they paid off there. Each is
enqueued once per project, applied to the best configuration at its turn; a fifth (frequency
sort) helped there only after the others and is left to TPE."""

STUDY_FILE = "recipe-study.journal"
"""The study's journal, in the project's private folder (.autosae/)."""
ASKS = 200
"""Most TPE samples per proposal: a sample that repeats a tried configuration is told as failed
(TPE ignores failed trials) and TPE asked again; past this, the search takes untried single
changes of the best, then any untried configuration."""
STARTUP = 4
PRIOR_WEIGHT = 0.3
"""Trials TPE samples at random before it models (the baselines and the known-good changes
usually pass this at once)."""


def params(config: dict) -> dict | None:
    """A configuration as trial parameters: only the settings that matter (DEPENDS), None when
    a value lies outside the search space (a user's idea may name one)."""
    c = normalise(config)
    out = {}
    for name, values in CHOICES.items():
        dep = DEPENDS.get(name)
        if dep is not None and not dep.active(c[dep.on]):
            continue
        if c[name] not in values:
            return None
        out[name] = c[name]
    return out


def suggest(trial: optuna.Trial) -> dict:
    """A configuration from TPE, asking for a dependent setting only when its switch is on."""
    c: dict = {}
    for name, values in CHOICES.items():
        dep = DEPENDS.get(name)
        if dep is None or dep.active(c[dep.on]):
            c[name] = trial.suggest_categorical(name, values)
    return normalise(c)


class Search:
    """One proposal's view of the study: sync from the ledger, then enqueue or ask."""

    def __init__(self, ctx: AgentContext, seed: int):
        self.ctx, self.seed = ctx, seed
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.study = self._study()

    def _storage(self):
        if self.ctx.project_root is None:  # an agent outside a project (tests, quick checks)
            return optuna.storages.InMemoryStorage()
        folder = Path(self.ctx.project_root) / ".autosae"
        folder.mkdir(parents=True, exist_ok=True)
        backend = optuna.storages.journal.JournalFileBackend(str(folder / STUDY_FILE))
        return optuna.storages.JournalStorage(backend)

    def _sampler(self, attempt: int = 0) -> optuna.samplers.TPESampler:
        with warnings.catch_warnings():  # multivariate and group are marked experimental
            warnings.simplefilter("ignore")
            return optuna.samplers.TPESampler(
                seed=((self.seed * 100_003 + self.ctx.sprint_number) * 1_009 + attempt) % 2**32,
                n_startup_trials=STARTUP,
                prior_weight=PRIOR_WEIGHT,
                multivariate=True,
                group=True,  # conditional settings: one model per subspace of settings that occur together
            )

    def _study(self) -> optuna.Study:
        ctx = self.ctx
        name = f"recipe {ctx.profile} width {ctx.width} k {ctx.k:g} {ctx.objective} seed {self.seed}"
        storage = self._storage()
        study = optuna.create_study(
            storage=storage, study_name=name, direction="maximize", sampler=self._sampler(), load_if_exists=True
        )
        wanted = self._ledger_trials()
        have = {t.user_attrs["sprint"]: t for t in study.get_trials(deepcopy=False) if "sprint" in t.user_attrs}
        if any(s not in wanted or _value(t) != wanted[s][1] for s, t in have.items()):  # the ledger changed
            optuna.delete_study(study_name=name, storage=storage)
            study = optuna.create_study(storage=storage, study_name=name, direction="maximize", sampler=self._sampler())
            have = {}
        pending = {}
        for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING, TrialState.RUNNING)):
            if t.state == TrialState.WAITING:  # enqueued by a proposal that never asked: drop it
                study.tell(study.ask(), state=TrialState.FAIL)
            elif t.user_attrs.get("sprint_number", -1) < ctx.sprint_number:  # else a lane's sprint in flight
                pending.setdefault(t.user_attrs.get("config"), []).append(t)
        for sprint, (p, value) in wanted.items():
            if sprint in have:
                continue
            trial = (pending.get(config_key(p)) or [None]).pop(0) if p is not None else None
            p = p or {}  # outside the search space: a failed trial without parameters
            state = TrialState.COMPLETE if value is not None else TrialState.FAIL
            if trial is not None:  # asked by an earlier proposal: its sprint is now recorded
                optuna.trial.Trial(study, trial._trial_id).set_user_attr("sprint", sprint)
                study.tell(trial.number, value, state=state)
            else:
                study.add_trial(
                    create_trial(
                        params=p,
                        distributions={k: CategoricalDistribution(CHOICES[k]) for k in p},
                        value=value,
                        state=state,
                        user_attrs={"sprint": sprint},
                    )
                )
        for stale in (t for ts in pending.values() for t in ts):  # proposed, never recorded
            study.tell(stale.number, state=TrialState.FAIL)
        return study

    def _ledger_trials(self) -> dict[str, tuple[dict | None, float | None]]:
        """{sprint id: (trial parameters, objective)} from the ledger, baselines first; sprints
        outside the search space keep their place as failed trials without parameters."""
        ctx, out = self.ctx, {}
        for name, config in BASELINE_CONFIGS.items():
            out[f"baseline:{name}"] = (params(config), (ctx.baselines.get(name) or {}).get(ctx.objective))
        for p in ctx.past:
            if p.config and not p.id.startswith("("):  # "(refused)" rows are the engine's, not sprints
                value = getattr(p, ctx.objective, None) if p.verdict != "failed" else None
                out[p.id] = (params(p.config), value)
        return {k: v if v[0] is not None else (None, None) for k, v in out.items()}

    def running(self) -> set[str]:
        """Configurations that parallel lanes proposed for sprints not yet recorded."""
        trials = self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        return {t.user_attrs["config"] for t in trials if "config" in t.user_attrs}

    def propose(self, start: dict, tried: set[str]) -> dict | None:
        """The next configuration: a known-good change of `start` while one is left, else TPE's."""
        tried = tried | self.running()
        for field, value in KNOWN_GOOD:
            if any(_made(p, field, value, self.ctx.past) for p in self.ctx.past):
                continue
            config = normalise({**start, field: value})
            if config_key(config) in tried:
                continue
            if params(config) is None:  # a start from a user's idea outside the space: no trial to ask
                return config
            self.study.enqueue_trial(params(config))
            return self._ask(tried, suggest)
        return self._ask(tried, suggest)

    def _ask(self, tried: set[str], sample) -> dict | None:
        for attempt in range(ASKS):
            self.study.sampler = self._sampler(attempt)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                trial = self.study.ask()
                config = sample(trial)
            if config_key(config) not in tried:
                trial.set_user_attr("config", config_key(config))
                trial.set_user_attr("sprint_number", self.ctx.sprint_number)
                return config
            trial.set_user_attr("duplicate", config_key(config))
            self.study.tell(trial, state=TrialState.FAIL)
        return None


def _made(p: PastSprint, field: str, value, past: list[PastSprint]) -> bool:
    """Whether sprint `p` made the single change field=value to its parent's configuration."""
    if not p.config or normalise(p.config)[field] != normalise({field: value})[field]:
        return False
    parents = {q.id: q.config for q in past if q.config} | {f"baseline:{n}": c for n, c in BASELINE_CONFIGS.items()}
    parent = parents.get(p.parent or "")
    if parent is None:
        return False
    a, b = normalise(parent), normalise(p.config)
    return main_changes([k for k in a if a[k] != b[k]]) == [field]


def _value(trial) -> float | None:
    return trial.value if trial.state == TrialState.COMPLETE else None


def every_config() -> list[dict]:
    """Every configuration of the space, normalised and without repeats, in a fixed order."""
    configs = (normalise(dict(zip(CHOICES, values))) for values in itertools.product(*CHOICES.values()))
    return list({config_key(c): c for c in configs}.values())
