"""The `autosae` command line: one module per noun, each thin over library functions.

Heavy imports (torch, sae_lens) happen inside commands, so `autosae --help` stays fast.
"""

from __future__ import annotations

import os
import sys

import typer

from autosae.errors import AutosaeError

app = typer.Typer(
    name="autosae",
    help="Autonomous SAE research on SynthSAEBench: a research loop over a trusted harness.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

from autosae.cli import baselines, bench, ideas, project, slack, sprint, templates, train, transfer  # noqa: E402  (register commands)

# research first, then the harness underneath it
app.command("init")(project.init)
app.command("sprint")(sprint.sprint)
app.command("loop")(sprint.loop)
app.command("stop")(sprint.stop)
app.command("resume")(sprint.resume)
app.command("status")(project.status)
app.command("leaderboard")(project.leaderboard)
app.command("show")(project.show)
app.command("report")(project.report)
app.command("verify")(project.verify)
app.command("transfer")(transfer.transfer)
app.command("slack")(slack.slack)
app.add_typer(templates.app, name="templates")
app.add_typer(ideas.app, name="idea")
app.add_typer(bench.app, name="bench")
app.command("train")(train.train)
app.command("baselines")(baselines.baselines)
app.command("variants")(train.variants)


def main() -> None:
    """Entry point: known errors become one line and an exit code, never a traceback."""
    # off a terminal, third-party progress bars are kilobytes of carriage returns in a log; tqdm reads
    # TQDM_DISABLE when first imported (after this line), and every process we start inherits it
    if not sys.stderr.isatty():
        os.environ.setdefault("TQDM_DISABLE", "1")
    try:
        result = app(standalone_mode=False)
    except AutosaeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:  # usage errors from typer's bundled click
        exc.show()
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:  # a bug of ours: still one line, the traceback on request
        if os.environ.get("AUTOSAE_DEBUG"):
            raise
        print(f"internal error: {type(exc).__name__}: {exc} (set AUTOSAE_DEBUG=1 for the traceback)", file=sys.stderr)
        sys.exit(70)
    sys.exit(result if isinstance(result, int) else 0)
