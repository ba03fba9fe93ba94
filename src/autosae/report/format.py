"""Number formatting shared by reports and the CLI ("—" wherever a value is missing)."""

from __future__ import annotations

MISSING = "—"


def fmt_num(value, digits: int = 3) -> str:
    return MISSING if value is None else f"{value:.{digits}f}"


def fmt_delta(value, digits: int = 3) -> str:
    return MISSING if value is None else f"{value:+.{digits}f}"


def not_measurable(n: int | None) -> str:
    """What a spread is when fewer than 2 seeds measured it: never a zero (the harness stores
    std 0.0 for a single seed, which is no measurement)."""
    return f"not measurable (n = {n if n is not None else 0})"


def measured(stat: dict | None) -> bool:
    """Whether a {mean, std, n} stat's std was measured: n >= 2, or n not recorded (old records)."""
    n = (stat or {}).get("n")
    return n is None or n >= 2


def fmt_pm(stat: dict | None, digits: int = 3, missing: str = MISSING) -> str:
    """`0.781 ± 0.006` from {"mean", "std", "n"}; `0.781 ± not measurable (n = 1)` from a single
    seed; the mean alone where no std is recorded (a probe ceiling)."""
    if not stat or stat.get("mean") is None:
        return missing
    mean = f"{stat['mean']:.{digits}f}"
    if not measured(stat):
        return f"{mean} ± {not_measurable(stat.get('n'))}"
    return mean if stat.get("std") is None else f"{mean} ± {stat['std']:.{digits}f}"


def fmt_stat(stat: dict | None, digits: int = 4, missing: str = MISSING) -> str:
    """fmt_pm with the number of seeds: `0.7810 ± 0.0060 (n = 3)` (a single seed already says n)."""
    text = fmt_pm(stat, digits, missing)
    n = (stat or {}).get("n")
    return text if text == missing or n is None or n < 2 else f"{text} (n = {n})"


def fmt_floor(value: float | None, note: str | None = None, digits: int = 4) -> str:
    """A noise floor: the number, or why there is none (`not measurable (n = 1)`)."""
    if note:
        return note
    return MISSING if value is None else f"{value:.{digits}f}"


def fmt_row_floor(row: dict) -> str:
    """A ledger row's noise floor; rows recorded before noise_floor_note held 0.0 for a single
    seed, which their per-seed scores give away."""
    note = row.get("noise_floor_note")
    n = len((row.get("per_seed") or {}).get(row.get("objective") or "f1") or [])
    if note is None and row.get("noise_floor") is not None and n == 1:
        note = not_measurable(n)
    return fmt_floor(row.get("noise_floor"), note)


def fmt_p(value) -> str:
    return MISSING if value is None else (f"{value:.3f}" if value >= 0.001 else f"{value:.1e}")


def duration(seconds: float) -> str:
    """4 h, 20 min, 300 s: the time limit as a researcher would say it."""
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds >= 120:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:g} s"
