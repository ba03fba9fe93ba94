"""Requests to change a profile's constraints: refused for counted runs, applied otherwise."""

from __future__ import annotations

import dataclasses

from autosae.bench.profiles import Profile
from autosae.errors import ConstraintBreach


def apply_requests(profile: Profile, requests: dict[str, float | int | None], counted: bool) -> Profile:
    """The profile with `requests` (constraint name -> value, None: keep) applied.

    A counted run may not change any constraint: the first difference is refused with
    the constraint's name, the value asked for, the required value and the distance."""
    c = profile.constraints
    changes = {name: value for name, value in requests.items() if value is not None and value != getattr(c, name)}
    if counted and changes:
        name, value = next(iter(changes.items()))
        required = getattr(c, name)
        raise ConstraintBreach(
            f"constraint {name}: {value:g} requested, the {profile.name} profile requires "
            f"{required:g} (off by {value - required:+g}); pass --uncounted for an exploratory "
            "run that is not counted"
        )
    if not changes:
        return profile
    return dataclasses.replace(profile, constraints=dataclasses.replace(c, **changes))
