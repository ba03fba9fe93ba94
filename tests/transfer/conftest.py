"""The transfer tests use the sprint tests' project."""

from tests.sprint.conftest import project  # noqa: F401  (the fixture)
