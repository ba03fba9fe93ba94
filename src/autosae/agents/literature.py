"""Literature search for the LLM backends: the web tools each backend gets, and the sources it read.

TASK.md's `agent.literature` (config.LiteratureSettings) is resolved into a plain dict that
rides on AgentContext.literature (None: off), so that a resumed sprint keeps the settings it
started under:

    {"phases": ["propose"], "max_searches": 5, "max_fetches": 5, "max_fetch_tokens": 25000,
     "allowed_domains": [...] or None, "blocked_domains": [...] or None}

The anthropic backend gets Anthropic's server-side tools (web_search, web_fetch), bounded per
phase: each request offers what is left of the phase's allowance, counted from the
conversation itself (so the count survives a kill and a resume), and a spent tool is left out.
The claude_code backend gets its WebSearch and WebFetch tools, with WebFetch limited to the
domains by permission rules.

Sources are what the web tools brought back, never what the model says it read: the pages
web_fetch fetched, the search results a text block cites (anthropic), the pages WebFetch
fetched and the links WebSearch returned (claude_code). Everything in them comes from the
web, so every source passes `clean_sources`: http(s) URLs only, bounded lengths and count,
no control characters.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, urlsplit

WEB_SEARCH = {"type": "web_search_20250305", "name": "web_search"}
WEB_FETCH = {"type": "web_fetch_20250910", "name": "web_fetch"}
FETCH_BETA = "web-fetch-2025-09-10"
"""The beta header web_fetch_20250910 is served under (`anthropic-beta`)."""
SERVER_RESULTS = {"web_search": "web_search_tool_result", "web_fetch": "web_fetch_tool_result"}

MAX_SOURCES = 30
"""The most sources recorded for one sprint (the first ones, in the order they were read)."""
MAX_URL = 500
MAX_TITLE = 200


# -- settings --------------------------------------------------------------------------------


def active(settings: dict | None, phase: str) -> bool:
    """Whether `phase` gets web tools under the resolved settings."""
    return (
        bool(settings)
        and phase in settings.get("phases", ())
        and (settings.get("max_searches", 0) > 0 or settings.get("max_fetches", 0) > 0)
    )


def _domains(settings: dict) -> dict[str, list[str]]:
    if settings.get("allowed_domains"):
        return {"allowed_domains": list(settings["allowed_domains"])}
    if settings.get("blocked_domains"):
        return {"blocked_domains": list(settings["blocked_domains"])}
    return {}


# -- the anthropic backend -------------------------------------------------------------------


def server_uses(messages: list[dict]) -> dict[str, int]:
    """Completed server tool calls in a conversation, by tool name: a `server_tool_use` counts
    once its result block is in the conversation (a call still pending in a paused turn does
    not; the continuation runs it)."""
    done = set()
    for message in messages:
        for block in _blocks(message):
            if block.get("type") in SERVER_RESULTS.values():
                done.add(block.get("tool_use_id"))
    counts = {name: 0 for name in SERVER_RESULTS}
    for message in messages:
        for block in _blocks(message):
            if block.get("type") == "server_tool_use" and block.get("name") in counts and block.get("id") in done:
                counts[block["name"]] += 1
    return counts


def server_tools(settings: dict | None, phase: str, messages: list[dict]) -> list[dict]:
    """Anthropic's web_search and web_fetch tool definitions for the next request of `phase`:
    max_uses is what is left of the phase's allowance (the API bounds each request; this
    bounds the phase), and a tool whose allowance is spent is left out."""
    if not active(settings, phase):
        return []
    used = server_uses(messages)
    domains = _domains(settings)
    tools = []
    left = int(settings.get("max_searches", 0)) - used["web_search"]
    if left > 0:
        tools.append({**WEB_SEARCH, "max_uses": left, **domains})
    left = int(settings.get("max_fetches", 0)) - used["web_fetch"]
    if left > 0:
        tools.append(
            {
                **WEB_FETCH,
                "max_uses": left,
                **domains,
                "citations": {"enabled": True},
                "max_content_tokens": int(settings.get("max_fetch_tokens", 25000)),
            }
        )
    return tools


def needs_fetch_beta(tools: list[dict], messages: list[dict] = ()) -> bool:
    """Whether a request must carry the web_fetch beta header: web_fetch is offered, or its
    blocks are in the conversation (they exist only in the beta's schema, so the header stays
    after the tool is spent or refused)."""
    if any(t.get("type") == WEB_FETCH["type"] for t in tools):
        return True
    return any(
        isinstance(b, dict)
        and (
            b.get("type") == SERVER_RESULTS["web_fetch"]
            or (b.get("type") == "server_tool_use" and b.get("name") == "web_fetch")
        )
        for m in messages
        if isinstance(m.get("content"), list)
        for b in m["content"]
    )


def settle(content: list[dict], stop_reason: str | None) -> list[dict]:
    """An assistant message's blocks as they can go back to the API. A `server_tool_use`
    without its result is only legitimate in a paused turn (stop_reason "pause_turn": the
    continuation runs it); anywhere else (a turn cut at max_tokens) the API would refuse the
    next request over it, so it is dropped."""
    if stop_reason == "pause_turn":
        return content
    answered = {b.get("tool_use_id") for b in content if b.get("type") in SERVER_RESULTS.values()}
    return [b for b in content if b.get("type") != "server_tool_use" or b.get("id") in answered]


def message_sources(messages: list[dict]) -> list[dict[str, str]]:
    """The web sources of an Anthropic conversation: every page web_fetch fetched, and every
    search result that a text block of the model cites. Only blocks of assistant messages
    count (the API puts server tool results there; a client tool's result, in a user message,
    is the project's own text). A search hit that was neither fetched nor cited is not a
    source: the model saw a snippet of it, no more."""
    titles: dict[str, str] = {}
    found: list[dict[str, Any]] = []
    for message in messages:
        if not isinstance(message, dict) or message.get("role") != "assistant":
            continue
        for block in _blocks(message):
            kind = block.get("type")
            if kind == "web_search_tool_result" and isinstance(block.get("content"), list):
                for hit in block["content"]:
                    if isinstance(hit, dict) and isinstance(hit.get("url"), str) and isinstance(hit.get("title"), str):
                        titles.setdefault(hit["url"].strip(), hit["title"])
            elif kind == "web_fetch_tool_result" and isinstance(block.get("content"), dict):
                result = block["content"]
                if result.get("type") == "web_fetch_result":
                    document = result.get("content") if isinstance(result.get("content"), dict) else {}
                    found.append({"url": result.get("url"), "title": document.get("title")})
            elif kind == "text" and isinstance(block.get("citations"), list):
                for cite in block["citations"]:
                    if isinstance(cite, dict) and cite.get("type") == "web_search_result_location":
                        found.append({"url": cite.get("url"), "title": cite.get("title")})
    for source in found:
        if not source.get("title") and isinstance(source.get("url"), str):
            source["title"] = titles.get(source["url"].strip(), "")
    return clean_sources(found)


def _blocks(message: dict) -> list[dict]:
    content = message.get("content") if isinstance(message, dict) else None
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


# -- the claude_code backend -----------------------------------------------------------------


def claude_code_tools(settings: dict | None, phase: str) -> tuple[list[str], list[str]]:
    """(--allowedTools entries, --disallowedTools entries) for one Claude Code session: with
    literature on for the phase, WebSearch and WebFetch, the latter only on the allowed
    domains (a `WebFetch(domain:...)` permission rule each) or anywhere but the blocked ones;
    off, both tools are disallowed, which takes them out of the model's tool list."""
    if not active(settings, phase):
        return [], ["WebSearch", "WebFetch"]
    allowed, denied = [], []
    if settings.get("max_searches", 0) > 0:
        allowed.append("WebSearch")
    else:
        denied.append("WebSearch")
    if settings.get("max_fetches", 0) > 0:
        domains = settings.get("allowed_domains")
        allowed += [f"WebFetch(domain:{d})" for d in domains] if domains else ["WebFetch"]
        denied += [f"WebFetch(domain:{d})" for d in settings.get("blocked_domains") or []]
    else:
        denied.append("WebFetch")
    return allowed, denied


def stream_sources(events: Iterable[dict]) -> list[dict[str, str]]:
    """The web sources of a Claude Code session, from its stream-json events: the pages its
    WebFetch tool fetched (a result that is not an error, with an HTTP status below 400), and
    the links its WebSearch tool returned (Claude Code's search result is a summary written
    from those pages). URLs the model merely wrote in its answer are not sources."""
    calls: dict[str, str] = {}  # tool_use id -> tool name
    titles: dict[str, str] = {}
    found: list[dict[str, Any]] = []
    for event in events:
        if not isinstance(event, dict):
            continue
        message = event.get("message") if isinstance(event.get("message"), dict) else {}
        if event.get("type") == "assistant":
            for block in _blocks(message):
                if block.get("type") == "tool_use" and block.get("name") in ("WebSearch", "WebFetch"):
                    calls[str(block.get("id"))] = block["name"]
        elif event.get("type") == "user":
            results = [b for b in _blocks(message) if b.get("type") == "tool_result"]
            detail = event.get("tool_use_result")
            for result in results:
                name = calls.get(str(result.get("tool_use_id")))
                if name is None or result.get("is_error") or not isinstance(detail, dict):
                    continue
                if name == "WebFetch":
                    code = detail.get("code")
                    if isinstance(code, int) and code < 400:
                        found.append({"url": detail.get("url"), "title": ""})
                else:
                    for group in detail.get("results") or []:
                        links = group.get("content") if isinstance(group, dict) else None
                        for link in links if isinstance(links, list) else []:
                            if isinstance(link, dict):
                                found.append({"url": link.get("url"), "title": link.get("title")})
                                if isinstance(link.get("url"), str) and isinstance(link.get("title"), str):
                                    titles.setdefault(link["url"].strip(), link["title"])
    for source in found:
        if not source.get("title") and isinstance(source.get("url"), str):
            source["title"] = titles.get(source["url"].strip(), "")
    return clean_sources(found)


# -- untrusted text --------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]")


def _text(value: Any, limit: int) -> str:
    """One line of printable text, at most `limit` characters (cut with an ellipsis)."""
    if not isinstance(value, str):
        return ""
    text = " ".join(_CONTROL.sub(" ", unicodedata.normalize("NFC", value)).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def clean_url(value: Any) -> str | None:
    """An http(s) URL with a host, of printable ASCII (other characters percent-encoded),
    at most MAX_URL characters; None for anything else (javascript:, data:, file:, a URL
    with spaces or credentials, an over-long one)."""
    if not isinstance(value, str):
        return None
    url = value.strip()
    if not url or len(url) > MAX_URL or _CONTROL.search(url) or any(c.isspace() for c in url):
        return None
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a malformed port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        return None
    url = quote(url, safe=":/?#[]@!$&'*+,;=%~-._")  # non-ASCII and quotes, brackets of Markdown: encoded
    return url if len(url) <= MAX_URL else None


def clean_sources(items: Iterable[Any], limit: int = MAX_SOURCES) -> list[dict[str, str]]:
    """Sources as autosae records them: [{"url", "title"}], http(s) only, deduplicated by URL
    (the first non-empty title kept), titles one line of at most MAX_TITLE characters, at most
    `limit` of them."""
    out: dict[str, dict[str, str]] = {}
    for item in items or []:
        if not isinstance(item, dict):
            continue
        url = clean_url(item.get("url"))
        if url is None:
            continue
        title = _text(item.get("title"), MAX_TITLE)
        if url in out:
            out[url]["title"] = out[url]["title"] or title
        elif len(out) < limit:
            out[url] = {"url": url, "title": title}
    return list(out.values())


def merge_sources(*groups: Iterable[Any]) -> list[dict[str, str]]:
    """Several phases' sources as one list (in order, deduplicated, bounded)."""
    return clean_sources([s for group in groups for s in group or []])


_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+!|<>~$])")


_MARKDOWN_TEXT = re.compile(r"([\\`*_{}\[\]#+!|<>~$])")
"""What escape_markdown escapes: parentheses are left as they are (with the brackets escaped
they cannot make a link), so that ordinary prose such as "(Gregor & LeCun 2010)" reads as written."""


def escape_markdown(value: Any, limit: int) -> str:
    """Untrusted text as one line of Markdown that renders as the text itself."""
    return _MARKDOWN_TEXT.sub(r"\\\1", _text(value, limit))


def markdown_link(source: dict) -> str:
    """`[title](url)` safe to put in Markdown: the title's Markdown and HTML characters
    escaped, the URL re-checked and with parentheses encoded (it ends the link otherwise)."""
    url = clean_url(source.get("url")) or ""
    url = url.replace("(", "%28").replace(")", "%29")
    title = _MARKDOWN.sub(r"\\\1", _text(source.get("title"), MAX_TITLE) or url)
    return f"[{title}]({url})" if url else title


def plain_line(source: dict) -> str:
    """A source as one line of plain text (the PDF): `title: url` (the PDF is written with
    mathtext off, so a `$` in a title is shown as it is)."""
    url = clean_url(source.get("url")) or ""
    title = _text(source.get("title"), MAX_TITLE)
    line = f"{title}: {url}" if title else url
    return line


README_START = "<!-- autosae:sources (written by autosae from the web tools' results; not the agent's) -->"
README_END = "<!-- /autosae:sources -->"
_README_BLOCK = re.compile(r"\n*<!-- autosae:sources\b.*?(?:<!-- /autosae:sources -->|\Z)\n?", re.S)


def readme_with_sources(text: str, sources: list[dict]) -> str:
    """The sprint README with autosae's "Sources" section at its end: any earlier one (or a
    look-alike the agent wrote between the markers) is removed first, so that writing it
    twice gives the same file and only autosae's record shows between the markers."""
    body = _README_BLOCK.sub("\n", text).rstrip("\n")
    body = body.replace(README_END, "")
    lines = [
        README_START,
        "## Sources",
        "",
        "What the agent read with its web tools while working on this sprint, as autosae recorded it "
        "from the tools' results (pages fetched, search results cited), not from the agent's own text.",
        "",
    ]
    lines += [f"- {markdown_link(s)}" for s in clean_sources(sources)] or ["None: no web page was fetched or cited."]
    lines += ["", README_END]
    return (body + "\n\n" if body else "") + "\n".join(lines) + "\n"
