"""Text an agent or a variant wrote, made safe for each place autosae shows it.

The agent writes a sprint's title, idea, hypothesis, plan, conclusion and file names; a variant
writes failure reasons and log lines. None of it may change the structure of what it lands in:
a newline and `|` in a title must not add a row to reports/leaderboard.md, `<!channel>` must not
notify a Slack channel, `$...$` must not be read as mathtext. One function per target, used by
every renderer (the jinja templates get them as filters, see autosae.templating):

    md_cell     plain text as one line of Markdown that renders as the text itself (table
                cells, headings, list items)
    md_code     a name or path as a `code span` in one line (plain escaped text where a code
                span cannot hold it)
    md_inline   Markdown that autosae composed around agent text, kept as Markdown but on one
                line and without HTML or table pipes
    md_block    the agent's own Markdown paragraphs (idea, conclusion): kept as Markdown, but
                they cannot open HTML, a heading, a table or a code fence that swallows the rest
    md_fenced   a fenced code block (a log tail, a diff) that the text cannot close
    mrkdwn      Slack mrkdwn: `&`, `<`, `>` as entities, so no mention, broadcast or link
    pdf_line    one line for a PDF title or heading (report.pdf and the leaderboard's pages are
                drawn with mathtext off: literal_text)

The records keep what the agent wrote; only what is shown is escaped.
"""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
"""Control and invisible characters (line and paragraph separators, bidi overrides) but tab and newline."""
_BREAKS = re.compile(r"\s*[\r\n]+\s*")
_MARKDOWN = re.compile(r"([\\`*_{}\[\]#+!|<>~$&])")
"""What md_cell escapes with a backslash: every character that starts Markdown, HTML or math
(GitHub renders `$...$`); parentheses, `-` and `.` are left as they are, so that prose reads as
written (with the brackets escaped, parentheses cannot make a link)."""
_CODE_SAFE = re.compile(r"[A-Za-z0-9 _.,:;/@=+~%^#*()'\"\[\]{}!?-]*")
"""What a code span may hold as it is: no backtick, pipe, backslash or angle bracket."""


def clean(text: object) -> str:
    """`text` as a string, without control or invisible characters (tab and newline kept)."""
    return _CONTROL.sub(" ", str(text if text is not None else ""))


def one_line(text: object, limit: int | None = None) -> str:
    """`text` on one line (line breaks as single spaces), cut to `limit` characters with "…"."""
    flat = _BREAKS.sub(" ", clean(text).replace("\t", " ")).strip()
    if limit is not None and len(flat) > limit:
        flat = flat[: limit - 1].rstrip() + "…"
    return flat


def md_cell(text: object, limit: int | None = None) -> str:
    """Plain text as one line of Markdown that renders as the text itself: safe in a table
    cell (every `|` escaped, no line break), a heading or a list item."""
    return _MARKDOWN.sub(r"\\\1", one_line(text, limit))


def md_code(text: object, limit: int | None = None) -> str:
    """A name or path as a code span; text that a code span cannot hold safely in a table
    (a backtick, a pipe, a backslash, an angle bracket) as md_cell's escaped text instead."""
    flat = one_line(text, limit)
    if flat and _CODE_SAFE.fullmatch(flat):
        return f"`{flat}`"
    return md_cell(flat)


def md_inline(text: object, limit: int | None = None) -> str:
    """Markdown that autosae composed (bold, code spans) around agent text, as one line with
    HTML and table pipes neutralised: for list items and lines of our own. Agent text that
    must read literally inside it should be md_cell'ed first."""
    flat = one_line(text, limit)
    return flat.replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


_BLOCK_START = re.compile(r"^( {0,3})(#|=+\s*$|-{3,}\s*$|\|)")
"""A line that would start a heading, a setext underline or a table row: its mark is escaped."""
_DELIMITER_ROW = re.compile(r"^[\s|:-]*\|[\s|:-]*$")
"""A table's delimiter row (`|---|---|`, `--|--`): without one, lines with pipes are no table."""
_FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})(.*)$")


def md_block(text: object) -> str:
    """The agent's own Markdown paragraphs (idea, hypothesis, plan, conclusion), kept as
    Markdown (lists, emphasis, code spans and blocks) but unable to change the report around
    them: no HTML (`<` as an entity), no heading or setext underline (its mark escaped), no
    table (a delimiter row's pipes escaped), and a code fence left open is closed at the end
    (it would swallow the sections after it). Lines inside a fence are code, shown as they are."""
    lines, fence = [], None
    for line in clean(text).replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        found = _FENCE.match(line)
        if fence is not None:  # inside a code block: literal; only its own closing fence ends it
            lines.append(line)
            mark = found.group(2) if found else ""
            if found and mark[0] == fence[0] and len(mark) >= len(fence) and not found.group(3).strip():
                fence = None
            continue
        if found and not (found.group(2)[0] == "`" and "`" in found.group(3)):
            fence = found.group(2)
            lines.append(line)
            continue
        line = line.replace("<", "&lt;")
        if _DELIMITER_ROW.match(line):
            line = line.replace("|", "\\|")
        lines.append(_BLOCK_START.sub(lambda m: m.group(1) + "\\" + m.group(2), line))
    if fence is not None:
        lines.append(fence)
    return "\n".join(lines)


def md_fenced(text: object, info: str = "") -> str:
    """`text` in a fenced code block whose fence is longer than any run of backticks in it,
    so no line of the text can close it."""
    body = clean(text).replace("\r\n", "\n").replace("\r", "\n").strip("\n")
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{body}\n{fence}"


def mrkdwn(text: object, limit: int | None = None) -> str:
    """Text for a Slack message (the app's and the webhook's): `&`, `<` and `>` as entities, so
    that `<!channel>`, `<!here>`, `<@U…>` and `<http://x|y>` show as typed and do nothing;
    cut to `limit` characters with "…"."""
    flat = clean(text)
    if limit is not None and len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    return flat.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def pdf_line(text: object, limit: int | None = None) -> str:
    """One line of plain text for a PDF title, heading or table cell (drawn under literal_text)."""
    return one_line(text, limit)


def literal_text():
    """A matplotlib rc context in which every text is drawn as it is: no mathtext (`$...$` and
    backslashes in an agent's title are shown, and an unknown symbol cannot raise) and no TeX."""
    import matplotlib

    return matplotlib.rc_context({"text.parse_math": False, "text.usetex": False})
