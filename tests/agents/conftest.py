"""Agent tests run real sprints in the same kind of project as the sprint tests."""

from tests.sprint.conftest import project  # noqa: F401  (the fixture)
