"""Red team: a launcher folder inside the project. submitit's pickles hold the profile with the
secret eval seed; in a folder of the project, a tool that reads the project (the anthropic
backend's propose-phase view tool) could read them. TASK.md is refused with one line that names
the field, before anything runs."""

from __future__ import annotations

from tests.sprint.conftest import autosae, commit, ledger, one_line_error


def test_a_launcher_folder_inside_the_project_is_refused_before_anything_runs(project):
    task = project / "TASK.md"
    task.write_text(task.read_text().replace("\n---\n", "\nlauncher: {kind: submitit-local, folder: jobs}\n---\n", 1))
    commit(project, "jobs in the project", "TASK.md")
    for command in (["sprint"], ["loop", "--max-sprints", "1"]):
        proc = autosae(*command, cwd=project)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        message = one_line_error(proc)
        assert "launcher.folder: 'jobs' is inside the project" in message and "TASK.md line " in message
    assert ledger(project) == [] and not (project / "jobs").exists()
    assert not list((project / ".autosae").glob("state/*.json"))  # no sprint was started
