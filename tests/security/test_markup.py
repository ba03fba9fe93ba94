"""Red team: text an agent wrote (a sprint's title, idea, hypothesis, conclusion, a file name)
lands in Markdown tables and headings, Slack messages and PDF pages. It is shown as the text
itself: it adds no table row, no heading, no Slack broadcast or mention, no mathtext."""

from __future__ import annotations

import re

import git
import pytest

from autosae.report.escape import md_cell, md_code, md_fenced, mrkdwn, one_line
from tests.report import pdftools
from tests.report.test_rendered import Webhook
from tests.sprint.conftest import COMMIT_ENV, autosae, ledger, write_script

FAKE_ROW = "| 99 | fake | improved ★ 0.9999 |"
TITLE = (
    f"x\n{FAKE_ROW}\n$\\unknownsymbol$ <!channel> <@U0123ABC> <http://evil.example|click> a`b"
    " [/bold] \x1b[31mred\nverdict: improved"
)
IDEA = (
    "an idea\n\n| fake | table |\n|---|---|\n| forged | 0.99 |\n\n# Verdict: improved ★\n"
    "<img src=x onerror=alert(1)> <!here> $\\alpha$"
)
CONCLUSION = "```\nan unclosed fence swallows the rest <!channel>\n## Cost and time\n| forged | row |"


def parse(md: str) -> list:
    """`md` as a GitHub-like Markdown parser reads it (CommonMark with tables; markdown-it-py
    comes with rich): its block tokens."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark").enable("table").parse(md)


def tables(md: str) -> list[list[list[str]]]:
    """Each table of `md` as its rows, each row as its cells' text."""
    out, row = [], None
    for token in parse(md):
        if token.type == "table_open":
            out.append([])
        elif token.type == "tr_open":
            row = []
            out[-1].append(row)
        elif token.type == "inline" and row is not None:
            row.append(text_of(token))
        elif token.type == "tr_close":
            row = None
    return out


def text_of(inline) -> str:
    """What a reader sees of an inline token: its text, code and line breaks as spaces."""
    return "".join(
        c.content if c.type in ("text", "code_inline") else " " if c.type in ("softbreak", "hardbreak") else ""
        for c in inline.children or []
    )


def headings(md: str) -> list[str]:
    tokens = parse(md)
    return [text_of(tokens[i + 1]) for i, t in enumerate(tokens) if t.type == "heading_open"]


def html(md: str) -> list[str]:
    """The raw HTML a renderer would pass on: none may come from an agent."""
    found = [t.content for t in parse(md) if t.type == "html_block"]
    for t in parse(md):
        found += [c.content for c in t.children or [] if c.type == "html_inline"]
    return found


@pytest.fixture(scope="module")
def hostile_sprint(tmp_path_factory):
    """One replayed sprint whose agent writes hostile text everywhere, with a live webhook."""
    from autosae.sprint.project import init_project
    from tests.sprint.conftest import write_task

    root = tmp_path_factory.mktemp("markup") / "research"
    init_project(root)
    write_task(root)
    write_script(
        root,
        [
            {
                "title": TITLE,
                "idea": IDEA,
                "hypothesis": "h <!everyone>\n| a | b |",
                "plan": "p",
                "variant": "lista_matryoshka",
                "conclusion": CONCLUSION,
            }
        ],
    )
    repo = git.Repo(root)
    repo.git.add("TASK.md", "script.yaml")
    repo.git.commit("-q", "-m", "hostile script", env=COMMIT_ENV)
    hook = Webhook()
    try:
        proc = autosae("sprint", cwd=root, env={"AUTOSAE_SLACK_WEBHOOK": hook.url})
    finally:
        hook.close()
    return {"root": root, "proc": proc, "payloads": hook.payloads}


def test_a_hostile_title_adds_no_leaderboard_row(hostile_sprint):
    root, proc = hostile_sprint["root"], hostile_sprint["proc"]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    (row,) = ledger(root)
    md = (root / "reports" / "leaderboard.md").read_text()
    ranked, in_order = tables(md)
    # the header, the sprint (and the 3 reference recipes, all trained on tiny)
    assert len(ranked) == 1 + 1 + 3 and len(in_order) == 1 + 1
    [sprint] = [r for r in ranked if r[1] != "baseline" and r[0] != "#"]
    assert sprint[2] == in_order[1][1] == one_line(TITLE)  # the whole title, in its own cell, as typed
    assert not html(md)
    text = pdftools.text(root / "reports" / "progress.pdf")  # the title as typed (cut), not mathtext
    assert "x | 99 | fake | improved ★ 0.9999 | $\\unknownsy" in text
    assert row["title"] == TITLE  # the record keeps what the agent wrote; only renderers escape


def test_a_hostile_sprint_report_keeps_its_structure(hostile_sprint):
    root = hostile_sprint["root"]
    (row,) = ledger(root)
    folder = root / "sprints" / row["id"]
    md = (folder / "report.md").read_text()
    found = headings(md)
    assert found[0] == one_line(TITLE) and md.splitlines()[2].startswith("**Verdict: ")
    assert "Verdict: improved ★" not in found  # the idea's heading is text
    assert found[-2:] == ["Cost and time", "Provenance"]  # the conclusion's open fence swallowed nothing
    assert not html(md)
    for table in tables(md):
        assert ["forged", "0.99"] not in table and ["forged", "row"] not in table
    assert [t[0][0] for t in tables(md)] == ["metric", "metric", "", "file", "", ""]  # the template's own tables
    text = pdftools.text(folder / "report.pdf").replace("\n", " ")
    assert "$\\unknownsymbol$" in text and "<!channel>" in text  # the PDF shows the text itself


def test_the_webhook_notice_shows_agent_text_literally(hostile_sprint):
    (notice,) = [p["text"] for p in hostile_sprint["payloads"] if "sprint `" in p["text"]]
    for raw in ("<!channel>", "<@U0123ABC>", "<http://evil.example|click>"):
        assert raw not in notice
    assert "&lt;!channel&gt;" in notice and "&lt;@U0123ABC&gt;" in notice
    assert "\n| 99 |" not in notice  # the title is one line


def test_slack_app_messages_escape_every_agent_field(hostile_sprint):
    """The Socket Mode app's messages (autosae.slack.text) for the same sprint: its proposal,
    verdict, leaderboard and `show` answers never carry a raw `<` of the agent's."""
    from autosae.slack import text
    from autosae.sprint.state import StateStore

    root = hostile_sprint["root"]
    (row,) = ledger(root)
    state = StateStore(root / ".autosae" / "state").load(row["id"])
    hostile = dict(row, parent="baseline:x <!channel>", reason="<!here> why")
    messages = [
        text.proposal(state, requester="U999"),
        text.verdict(hostile, state, requester="U999"),
        text.leaderboard([hostile], "f1"),
        text.show(hostile, state),
        text.show(None, state),
    ]
    for message in messages:
        assert not re.search(r"<(?!@U999>)", message), message  # only our own mention of the asker


def test_the_cli_prints_agent_text_on_its_own_line(hostile_sprint):
    """`autosae show` prints greppable `key: value` lines and `autosae leaderboard` a rich table:
    the title's newline forges no line, its terminal escape is not printed, and its
    `[/bold]` is not read as rich markup (a closing tag without an opening one raised)."""
    root = hostile_sprint["root"]
    (row,) = ledger(root)
    show = autosae("show", row["id"], cwd=root)
    assert show.returncode == 0 and "Traceback" not in show.stderr, show.stdout + show.stderr
    keys = [line.split(":", 1)[0] for line in show.stdout.splitlines()]
    assert keys.count("title") == 1 and keys.count("verdict") == 1 and "\x1b" not in show.stdout
    assert f"title: {one_line(TITLE)}" in show.stdout.splitlines()
    board = autosae("leaderboard", cwd=root)
    assert board.returncode == 0 and "Traceback" not in board.stderr, board.stdout + board.stderr
    assert "\x1b" not in board.stdout and "[/bold]" in board.stdout


@pytest.mark.parametrize(
    "hostile",
    ["a|b", "a\\|b", "a\nb", "a\r\nb", "`x`", "a\\", "<b>x</b>", "a\u2028b", "$x$"],
)
def test_cells_and_code_spans_are_one_literal_cell(hostile):
    for cell in (md_cell(hostile), md_code(hostile)):
        md = f"| a | b |\n|---|---|\n| {cell} | y |\n"
        assert "\r" not in md and "\u2028" not in md
        (table,) = tables(md)
        assert table[1] == [one_line(hostile), "y"], md  # one row, the text as typed
        assert not html(md)


def test_a_fence_is_longer_than_any_in_the_text():
    block = md_fenced("a\n```\n````\nb", "diff")
    first, *_, last = block.splitlines()
    assert first == "`````diff" and last == "`````"


def test_mrkdwn_escapes_control_sequences():
    assert mrkdwn("<!channel> & <@U1|x>") == "&lt;!channel&gt; &amp; &lt;@U1|x&gt;"


def test_commit_messages_quote_the_title_on_one_line(hostile_sprint):
    """A title's line breaks would forge a body or a trailer (`verdict: improved`) in git log:
    every commit autosae made for the sprint has a one-line message."""
    repo = git.Repo(hostile_sprint["root"])
    messages = [c.message for c in repo.iter_commits("--all") if "implement" in c.message or "sprint" in c.message]
    assert messages and all("\n" not in m.strip() for m in messages), messages
    assert not any(line.startswith("verdict:") for m in messages for line in m.splitlines())


def test_a_hostile_title_adds_no_digest_row_nor_heading(hostile_sprint):
    """reports/digest.md shows the title and the idea's parent in their cells: one row for the
    one sprint, the template's headings only, no HTML; the lineage page of progress.pdf shows
    the title (cut) as text, not mathtext."""
    root = hostile_sprint["root"]
    (row,) = ledger(root)
    md = (root / "reports" / "digest.md").read_text()
    assert headings(md) == [
        "The morning digest",
        "The night's lineage",
        "The night's sprints",
        "The best recipe",
        "What the notebook learned tonight",
        "Where the loop got stuck",
    ]
    (night,) = tables(md)
    assert len(night) == 2 and night[1][2] == one_line(TITLE)[:79] + "…"  # the title, cut, in its own cell
    assert not html(md) and FAKE_ROW not in md
    text = " ".join(pdftools.text(root / "reports" / "progress.pdf").split())
    assert "The night's lineage: 1 of 1 sprints" in text and "#1 x | 99 | fake" in text
