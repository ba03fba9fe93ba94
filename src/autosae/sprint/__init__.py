"""The sprint engine: project layout, git operations, state machine, verdicts, ledger, loop."""
