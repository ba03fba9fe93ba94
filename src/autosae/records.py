"""Typed records: a run's results, one seed's result, a sprint's verdict and its ledger row.

On disk they stay the plain JSON they always were (results.json, verdict.json, one line of
reports/ledger.jsonl); these classes only say which keys there are and read and write them in
one place. Every record is read tolerantly and written back faithfully, because projects made
by older releases must load and a rewrite must lose nothing:

- `from_dict` accepts a dict with keys missing (a record from before a field existed gets
  the field's default) and keeps every key it does not know in `extra`;
- `to_dict` gives back the keys it was read with, in their order, with unknown keys as they
  were; a key the source did not have is added only once it holds something other than its
  default. A record made in code (not read) writes every field, as the writers always did,
  except the OPTIONAL ones that are still None (verdict.json has no held-out keys until a
  held-out check ran).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from autosae.sprint.state import SprintState

OK = "ok"
"""The status of a seed, or of a whole run, that produced scores."""


def is_ok(record: Mapping | None) -> bool:
    """Whether a seed's result, or a run's results, produced scores (status "ok")."""
    return isinstance(record, Mapping) and record.get("status") == OK


def ok_seeds(results: Mapping | None) -> list[dict]:
    """The seeds of a run's results that produced scores, in their order."""
    return [r for r in (results or {}).get("per_seed") or [] if is_ok(r)]


REPORTED = "reported_by_variant"
"""The part of a seed's record that the variant's process reported about itself (its
architecture's name, parameter count, peak memory, executed lines): bounded and cleaned by
the harness (autosae.harness.reported), never measured by it, and never shown as its figure."""
LEGACY_REPORTED = {
    "architecture": "architecture",
    "parameters": "parameters",
    "worker_memory": "memory",
    "executed_lines": "executed_lines",
}
"""Where records written before REPORTED kept the same fields: at the top level of the seed."""


def reported_by_variant(seed: Mapping | None) -> dict:
    """What a seed's variant process reported about itself: REPORTED, or in an older record
    the same fields from the top level (LEGACY_REPORTED)."""
    seed = seed or {}
    found = seed.get(REPORTED)
    if isinstance(found, Mapping):
        return dict(found)
    return {new: seed[old] for old, new in LEGACY_REPORTED.items() if old in seed}


_BOOKKEEPING = ("extra", "source_keys")


@dataclass
class Record:
    """Known keys as typed fields; unknown ones in `extra`, written back as they were."""

    OPTIONAL: ClassVar[frozenset[str]] = frozenset()
    """Fields a record made in code writes only once they are set (not None)."""

    extra: dict[str, Any] = field(default_factory=dict, kw_only=True, repr=False)
    source_keys: tuple[str, ...] | None = field(default=None, kw_only=True, repr=False, compare=False)
    """The keys of the dict this record was read from, in order (None: made in code)."""

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls) if f.name not in _BOOKKEEPING]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]):
        names = set(cls.field_names())
        known = {k: cls._load(k, v) for k, v in data.items() if k in names}
        unknown = {k: v for k, v in data.items() if k not in names}
        return cls(**known, extra=unknown, source_keys=tuple(data))

    @classmethod
    def _load(cls, name: str, value: Any) -> Any:
        """A stored value as the field holds it (nested records are converted here)."""
        return value

    def _dump(self, name: str, value: Any) -> Any:
        return value

    def _written(self, f) -> bool:
        value = getattr(self, f.name)
        if self.source_keys is None:
            return not (f.name in self.OPTIONAL and value is None)
        if f.name in self.source_keys:
            return True
        default = f.default_factory() if f.default_factory is not MISSING else f.default
        return value != default

    def to_dict(self) -> dict[str, Any]:
        own = {
            f.name: self._dump(f.name, getattr(self, f.name))
            for f in fields(self)
            if f.name not in _BOOKKEEPING and self._written(f)
        }
        out: dict[str, Any] = {}
        for key in self.source_keys or ():  # the stored order first
            if key in own:
                out[key] = own.pop(key)
            elif key in self.extra:
                out[key] = self.extra[key]
        out.update(own)
        out.update({k: v for k, v in self.extra.items() if k not in out})
        return out


@dataclass
class SeedResult(Record):
    """One seed of a run: its status and, when ok, its metrics (f1, mcc, ... kept flat, as the
    harness writes them; the metrics this module does not name stay in `extra`)."""

    OPTIONAL = frozenset({"kind", "reason", "f1", "mcc"})
    seed: int | None = None
    status: str = "failed"
    kind: str | None = None
    """Why a failed seed failed, in one word (crash, time, memory, device, constraint, ...)."""
    reason: str | None = None
    f1: float | None = None
    mcc: float | None = None

    @property
    def ok(self) -> bool:
        return self.status == OK


@dataclass
class Results(Record):
    """A run's results.json, as the harness writes (and seals) it."""

    OPTIONAL = frozenset({"quick", "devices", "failure_kind", "log_tail", "seal"})
    status: str = "failed"
    reason: str | None = None
    counted: bool | None = None
    profile: str | None = None
    model_hash: str | None = None
    model_seed: int | None = None
    constraints: dict | None = None
    variant: str | None = None
    variant_sha256: str | None = None
    seeds: list[int] | None = None
    device: str | None = None
    versions: dict | None = None
    sandbox: dict | None = None
    quick: dict | None = None
    devices: list[str] | None = None
    per_seed: list[SeedResult] = field(default_factory=list)
    summary: dict[str, dict] = field(default_factory=dict)
    """{metric: {"mean", "std", "n"}} over the seeds that produced scores."""
    wall_s: float | None = None
    failure_kind: str | None = None
    log_tail: str | None = None
    seal: str | None = None

    @classmethod
    def _load(cls, name: str, value: Any) -> Any:
        if name == "per_seed" and isinstance(value, list):
            return [SeedResult.from_dict(r) if isinstance(r, Mapping) else r for r in value]
        return value

    def _dump(self, name: str, value: Any) -> Any:
        if name == "per_seed":
            return [r.to_dict() if isinstance(r, SeedResult) else r for r in value]
        return value

    @property
    def ok(self) -> bool:
        return self.status == OK

    def ok_seeds(self) -> list[SeedResult]:
        return [r for r in self.per_seed if isinstance(r, SeedResult) and r.ok]

    def stat(self, metric: str) -> dict | None:
        return (self.summary or {}).get(metric)


@dataclass
class Verdict(Record):
    """A sprint's verdict.json (also its state's `verdict`): see autosae.sprint.verdict."""

    OPTIONAL = frozenset({"held_out", "confirmed", "held_out_reason", "held_out_outcome"})
    verdict: str = "failed"
    objective: str = "f1"
    alpha: float | None = None
    parent: dict | None = None
    delta_parent: float | None = None
    p_value: float | None = None
    noise_floor: float | None = None
    noise_floor_note: str | None = None
    noop: bool = False
    noop_reason: str | None = None
    best: dict | None = None
    delta_best: float | None = None
    new_best: bool = False
    baselines: dict = field(default_factory=dict)
    coverage: dict | None = None
    reason: str = ""
    held_out: list[dict] | None = None
    """Per held-out model: the sprint's and the parent's scores and the pair's verdict."""
    confirmed: bool | None = None
    """The held-out check's outcome; None: never verified."""
    held_out_reason: str | None = None
    held_out_outcome: str | None = None
    """"confirmed", "consistent", "contradicted" or "not confirmed" (autosae.sprint.heldout.judge);
    None: never verified, or verified before the outcome was recorded (then `confirmed` says)."""

    def record_heldout(self, models: list[dict], confirmed: bool, reason: str, outcome: str | None = None) -> None:
        """The held-out check's outcome. A sprint it does not confirm is not the new best (nor
        the next sprints' parent), whatever the benchmark's model said."""
        self.held_out, self.confirmed, self.held_out_reason = models, confirmed, reason
        self.held_out_outcome = outcome or ("confirmed" if confirmed else "not confirmed")
        if not confirmed:
            self.new_best = False


@dataclass
class LedgerRow(Record):
    """One line of reports/ledger.jsonl: a finished sprint (written with sorted keys)."""

    OPTIONAL = frozenset({"conclusion_summary", "next_step", "pilot_notes", "held_out_outcome"})

    id: str = ""
    title: str = ""
    idea: str = ""
    parent: str | None = None
    verdict: str = "failed"
    reason: str | None = None
    noop: bool = False
    new_best: bool = False
    confirmed: bool | None = None
    held_out_outcome: str | None = None
    """The held-out check's outcome (Verdict.held_out_outcome); absent until verified."""
    objective: str = "f1"
    f1: dict | None = None
    mcc: dict | None = None
    l0: float | None = None
    precision: dict | None = None
    recall: dict | None = None
    dead_latents: dict | None = None
    per_seed: dict[str, list[float]] = field(default_factory=dict)
    delta_parent: float | None = None
    p_value: float | None = None
    noise_floor: float | None = None
    noise_floor_note: str | None = None
    backend: str | None = None
    cost_usd: float = 0.0
    tokens: dict[str, int] = field(default_factory=dict)
    stop: str | None = None
    wall_s: float | None = None
    started: str | None = None
    finished: str | None = None
    branch: str | None = None
    commit: str | None = None
    profile: str | None = None
    setting: str | None = None
    seeds: list[int] | None = None
    config: dict | None = None
    variant_sha256: str | None = None
    user_idea: bool = False
    queued_idea: int | None = None
    explore: bool = False
    sandboxed: bool | None = None
    conclusion_summary: str | None = None
    """The conclusion's first sentence, bounded (report.evidence.conclusion_parts)."""
    next_step: str | None = None
    """The conclusion's first next step, bounded."""
    pilot_notes: str | None = None
    """The latest pilot-note amendment's first sentence, bounded (amend_proposal)."""

    @classmethod
    def from_sprint(cls, state: SprintState, results: Mapping | None) -> LedgerRow:
        """The row of a finished sprint, from its state and its (sealed) results."""
        v = state.verdict or {}
        res = results or {}
        summary = res.get("summary") or {}
        ok = ok_seeds(res)
        return cls(
            id=state.id,
            title=state.title,
            idea=state.idea,
            parent=state.parent,
            verdict=v.get("verdict", "failed"),
            reason=v.get("reason"),
            noop=v.get("noop", False),
            new_best=v.get("new_best", False),
            confirmed=v.get("confirmed"),
            objective=state.objective,
            f1=summary.get("f1"),
            mcc=summary.get("mcc"),
            l0=(summary.get("l0") or {}).get("mean"),
            precision=summary.get("precision"),
            recall=summary.get("recall"),
            dead_latents=summary.get("dead_latents"),
            per_seed={m: [r[m] for r in ok if m in r] for m in ("f1", "mcc")},
            delta_parent=v.get("delta_parent"),
            p_value=v.get("p_value"),
            noise_floor=v.get("noise_floor"),
            noise_floor_note=v.get("noise_floor_note"),
            backend=state.backend,
            cost_usd=round(state.cost_usd, 4),
            tokens=state.tokens,
            stop=state.stop,
            wall_s=res.get("wall_s"),
            started=state.started,
            finished=state.finished,
            branch=state.branch,
            commit=state.commit,
            profile=state.profile,
            setting=state.setting,
            seeds=state.seeds,
            config=state.config,
            variant_sha256=res.get("variant_sha256"),
            user_idea=state.user_idea,
            queued_idea=state.queued_idea,
            explore=state.explore,
            sandboxed=state.sandboxed,
            **lessons(state),
        )


def lessons(state: SprintState) -> dict:
    """What the next proposer reads of a sprint besides its numbers (report.evidence)."""
    from autosae.report.evidence import conclusion_parts, pilot_summary

    summary, step = conclusion_parts(state.conclusion)
    outcome = (state.verdict or {}).get("held_out_outcome")
    return {
        "conclusion_summary": summary or None,
        "next_step": step or None,
        "pilot_notes": pilot_summary(state.amendments) or None,
        "held_out_outcome": outcome if isinstance(outcome, str) and outcome else None,
    }
