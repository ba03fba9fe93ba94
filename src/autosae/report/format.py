"""Number formatting shared by reports and the CLI ("—" wherever a value is missing)."""

from __future__ import annotations

import jinja2

from autosae.config import TEMPLATES_DIR

MISSING = "—"


def fmt_num(value, digits: int = 3) -> str:
    return MISSING if value is None else f"{value:.{digits}f}"


def fmt_delta(value, digits: int = 3) -> str:
    return MISSING if value is None else f"{value:+.{digits}f}"


def fmt_pm(stat: dict | None, digits: int = 3) -> str:
    """`0.781 ± 0.006` from {"mean", "std"}."""
    if not stat or stat.get("mean") is None:
        return MISSING
    return f"{stat['mean']:.{digits}f} ± {stat.get('std') or 0.0:.{digits}f}"


def fmt_p(value) -> str:
    return MISSING if value is None else (f"{value:.3f}" if value >= 0.001 else f"{value:.1e}")


def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES_DIR), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(num=fmt_num, delta=fmt_delta, pm=fmt_pm, p=fmt_p)
    return env
