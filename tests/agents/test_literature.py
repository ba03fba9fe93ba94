"""Literature search: TASK.md's agent.literature, Anthropic's server-side web_search and
web_fetch tools (against the local fake Messages API, with the real anthropic SDK), the
sources they bring back (recorded from the tools' results, escaped, bounded), their price,
a paused turn continued, and one real sprint that carries the sources into sprint.json, the
sprint's README.md, report.md and report.pdf."""

from __future__ import annotations

import json
from pathlib import Path

import git
import pytest

from autosae.agents.base import AgentContext, AgentError
from autosae.agents.claude_api import AnthropicAgent
from autosae.agents.literature import (
    FETCH_BETA,
    README_END,
    README_START,
    claude_code_tools,
    clean_sources,
    markdown_link,
    message_sources,
    readme_with_sources,
    server_tools,
    settle,
    stream_sources,
)
from autosae.agents.pricing import Price, usage_dict
from autosae.agents.transcript import Transcript
from autosae.config import DEFAULT_DOMAINS, LiteratureSettings, parse_task
from autosae.errors import AutosaeError
from autosae.variants import reference_variants
from tests.agents.fake_messages_api import FakeMessagesAPI, phase_of, turn_of, use
from tests.agents.test_anthropic import ENV, anthropic_project, sprint_folder
from tests.report import pdftools
from tests.sprint.conftest import autosae, ledger, one_line_error

VARIANT = reference_variants()["lista_matryoshka"].read_text()
LISTA = "https://arxiv.org/abs/1234.56789"
CODE = "https://github.com/example/lista"
IMPL = "https://github.com/example/lista/blob/main/lista.py"
HOSTILE_TITLE = "[click me](javascript:alert(1)) <img src=x onerror=alert(1)> $\\frac{$ | **bold**\nsecond line"


# -- the fake model's server tool blocks, shaped as the Messages API sends them --------------


def search(n: int, query: str, hits: list[tuple[str, str]]) -> list[dict]:
    sid = f"srvtoolu_search_{n}"
    return [
        {"type": "server_tool_use", "id": sid, "name": "web_search", "input": {"query": query}},
        {
            "type": "web_search_tool_result",
            "tool_use_id": sid,
            "content": [
                {
                    "type": "web_search_result",
                    "url": url,
                    "title": title,
                    "encrypted_content": f"ENC-{n}-{i}",
                    "page_age": "2 years ago",
                }
                for i, (url, title) in enumerate(hits)
            ],
        },
    ]


def fetch_call(n: int, url: str) -> dict:
    return {"type": "server_tool_use", "id": f"srvtoolu_fetch_{n}", "name": "web_fetch", "input": {"url": url}}


def fetch_result(n: int, url: str, title: str) -> dict:
    return {
        "type": "web_fetch_tool_result",
        "tool_use_id": f"srvtoolu_fetch_{n}",
        "content": {
            "type": "web_fetch_result",
            "url": url,
            "retrieved_at": "2026-11-25T10:00:00Z",
            "content": {
                "type": "document",
                "title": title,
                "citations": {"enabled": True},
                "source": {"type": "text", "media_type": "text/plain", "data": f"the text of {title}"},
            },
        },
    }


def cited(text: str, url: str, title: str | None) -> dict:
    return {
        "type": "text",
        "text": text,
        "citations": [
            {
                "type": "web_search_result_location",
                "url": url,
                "title": title,
                "cited_text": "LISTA unrolls ISTA",
                "encrypted_index": "EIDX-1",
            }
        ],
    }


PROPOSAL = {
    "title": "LISTA from sparse coding",
    "idea": "an unrolled ISTA step before the top-K",
    "hypothesis": "explaining away sharpens the latents",
    "plan": "one LISTA step on Matryoshka",
    "parent": "baseline:matryoshka",
    "origin": "LISTA (Gregor & LeCun 2010), classical sparse coding",
}
SETTINGS = LiteratureSettings(max_searches=3, max_fetches=2, allowed_domains=["arxiv.org", "github.com"]).resolved()


def context(tmp_path: Path, literature: dict | None = SETTINGS) -> AgentContext:
    return AgentContext(
        task_body="Beat the baseline.",
        profile="tiny",
        objective="f1",
        sprint_number=0,
        project_root=tmp_path,
        record_dir=tmp_path / "record",
        literature=literature,
    )


def agent(url: str) -> AnthropicAgent:
    return AnthropicAgent(model="claude-sonnet-4-5", base_url=url, sandbox="off", max_retries=0, backoff_s=0.01)


def web_tools(body: dict) -> dict[str, dict]:
    return {t["name"]: t for t in body["tools"] if str(t.get("type", "")).startswith("web_")}


# -- TASK.md -------------------------------------------------------------------------------


def front(text: str) -> str:
    return f"---\nprofile: tiny\nagent:\n  literature:\n{text}---\nbody\n"


def test_task_md_settings_resolve_and_bad_ones_are_one_line_errors():
    default = parse_task("---\nprofile: tiny\n---\n").config.agent.literature.resolved()
    assert default["phases"] == ["propose"] and default["max_searches"] == 5 and default["max_fetches"] == 5
    assert default["allowed_domains"] == list(DEFAULT_DOMAINS) and default["blocked_domains"] is None
    assert {"arxiv.org", "openreview.net", "proceedings.mlr.press", "github.com"} <= set(DEFAULT_DOMAINS)
    blocked = parse_task(front("    blocked_domains: [Example.com]\n")).config.agent.literature.resolved()
    assert blocked["allowed_domains"] is None and blocked["blocked_domains"] == ["example.com"]  # replaces the default
    both = parse_task(front("    phases: [implement, propose, implement]\n    max_searches: 0\n"))
    assert both.config.agent.literature.resolved()["phases"] == ["implement", "propose"]
    assert parse_task(front("    enabled: false\n")).config.agent.literature.resolved() is None
    assert parse_task(front("    max_searches: 0\n    max_fetches: 0\n")).config.agent.literature.resolved() is None
    bad = {
        "    allowed_domains: [arxiv.org]\n    blocked_domains: [example.com]\n": "TASK.md line 4: agent.literature: set allowed_domains or blocked_domains, not both",
        "    allowed_domains: [https://arxiv.org]\n": "TASK.md line 5: agent.literature.allowed_domains: "
        "'https://arxiv.org': a domain without its scheme",
        "    allowed_domains: []\n": "expected at least one domain, or null",
        "    allowed_domains: ['arxiv org']\n": "is not a domain name",
        "    phases: [conclude]\n": "agent.literature.phases.0: expected 'propose' or 'implement'",
        "    max_searches: 500\n": "agent.literature.max_searches: less than or equal to 50",
        "    searches: 5\n": "agent.literature.searches: unknown field (known: enabled, phases, max_searches",
    }
    for text, expected in bad.items():
        with pytest.raises(AutosaeError) as err:
            parse_task(front(text))
        assert expected in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_a_bad_literature_setting_stops_the_cli_with_one_line(project):
    task = (
        (project / "TASK.md")
        .read_text()
        .replace(
            "  seed: 0\n", "  seed: 0\n  literature:\n    allowed_domains: [arxiv.org]\n    blocked_domains: [x.com]\n"
        )
    )
    (project / "TASK.md").write_text(task)
    git.Repo(project).git.commit("-q", "-am", "both lists")
    proc = autosae("sprint", cwd=project)
    assert proc.returncode != 0
    assert "agent.literature: set allowed_domains or blocked_domains, not both" in one_line_error(proc)


# -- the tools, bounded per phase ----------------------------------------------------------


def test_the_server_tools_offer_what_is_left_of_the_phase_allowance():
    fresh = server_tools(SETTINGS, "propose", [])
    assert fresh == [
        {
            "type": "web_search_20250305",
            "name": "web_search",
            "max_uses": 3,
            "allowed_domains": ["arxiv.org", "github.com"],
        },
        {
            "type": "web_fetch_20250910",
            "name": "web_fetch",
            "max_uses": 2,
            "allowed_domains": ["arxiv.org", "github.com"],
            "citations": {"enabled": True},
            "max_content_tokens": 25000,
        },
    ]
    assert server_tools(SETTINGS, "implement", []) == [] and server_tools(SETTINGS, "conclude", []) == []
    assert server_tools(None, "propose", []) == []
    done = [
        {
            "role": "assistant",
            "content": [
                *search(0, "a", []),
                *search(1, "b", []),
                fetch_call(0, LISTA),
                fetch_result(0, LISTA, "LISTA"),
                fetch_call(1, CODE),
            ],
        }
    ]
    left = {t["name"]: t["max_uses"] for t in server_tools(SETTINGS, "propose", done)}
    assert left == {"web_search": 1, "web_fetch": 1}  # the pending fetch (no result yet) is not spent
    done[0]["content"] += [*search(2, "c", []), fetch_result(1, CODE, "code")]
    assert server_tools(SETTINGS, "propose", done) == []  # all spent: the tools leave the request
    blocked = LiteratureSettings(blocked_domains=["example.com"], phases=["implement"]).resolved()
    assert all(
        t["blocked_domains"] == ["example.com"] and "allowed_domains" not in t
        for t in server_tools(blocked, "implement", [])
    )
    # a server call cut off outside a paused turn would make the API refuse the next request
    cut = [*search(5, "x", []), fetch_call(5, LISTA), {"type": "text", "text": "…"}]
    assert [b["type"] for b in settle(cut, "max_tokens")] == ["server_tool_use", "web_search_tool_result", "text"]
    assert settle(cut, "pause_turn") == cut


def test_claude_code_gets_websearch_and_webfetch_by_domain_rules():
    allowed, denied = claude_code_tools(SETTINGS, "propose")
    assert allowed == ["WebSearch", "WebFetch(domain:arxiv.org)", "WebFetch(domain:github.com)"] and denied == []
    assert claude_code_tools(SETTINGS, "implement") == ([], ["WebSearch", "WebFetch"])
    assert claude_code_tools(None, "propose") == ([], ["WebSearch", "WebFetch"])
    blocked = LiteratureSettings(blocked_domains=["example.com"], max_searches=0).resolved()
    assert claude_code_tools(blocked, "propose") == (["WebFetch"], ["WebSearch", "WebFetch(domain:example.com)"])


# -- sources: from the tools' results, untrusted ----------------------------------------------


def test_sources_are_what_was_fetched_or_cited_and_never_the_model_text():
    messages = [
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "t",
                    "content": json.dumps(fetch_result(9, "https://project-file.example/x", "a file the agent viewed")),
                }
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "I read https://model-says.example/paper (trust me)."},
                *search(
                    0,
                    "lista",
                    [
                        (LISTA, "Learning Fast Approximations of Sparse Coding"),
                        (CODE, "lista code"),
                        ("https://arxiv.org/abs/seen-only", "a hit never fetched nor cited"),
                    ],
                ),
                fetch_call(0, CODE),
                fetch_result(0, CODE, "example/lista: LISTA in PyTorch"),
                cited("LISTA unrolls ISTA.", LISTA, None),  # no title in the citation: the search hit's title
                cited("again", LISTA, "Learning Fast Approximations of Sparse Coding"),
                fetch_call(1, "javascript:alert(1)"),
                fetch_result(1, "javascript:alert(1)", "evil"),
                cited("x", "https://user:pw@arxiv.org/abs/1", "credentials in a URL"),
                cited("y", "https://arxiv.org/abs/" + "9" * 600, "over-long"),
            ],
        },
    ]
    assert message_sources(messages) == [
        {"url": CODE, "title": "example/lista: LISTA in PyTorch"},
        {"url": LISTA, "title": "Learning Fast Approximations of Sparse Coding"},
    ]
    many = [
        {
            "role": "assistant",
            "content": [fetch_result(i, f"https://arxiv.org/abs/{i}", HOSTILE_TITLE * 5) for i in range(50)],
        }
    ]
    found = message_sources(many)
    assert len(found) == 30 and all(len(s["title"]) <= 200 and "\n" not in s["title"] for s in found)


def test_claude_code_sources_come_from_its_stream_events():
    """Shaped as Claude Code 2.1 writes them (seen against the fake API): WebSearch's links in
    the user event's tool_use_result, WebFetch's fetched URL and HTTP status."""
    events = [
        {
            "type": "assistant",
            "message": {
                "content": [
                    {"type": "tool_use", "id": "ws", "name": "WebSearch", "input": {"query": "LISTA"}},
                    {"type": "text", "text": "see https://model-says.example"},
                ]
            },
        },
        {
            "type": "user",
            "message": {"content": [{"type": "tool_result", "tool_use_id": "ws", "content": "..."}]},
            "tool_use_result": {
                "query": "LISTA",
                "results": [
                    {"tool_use_id": "srv", "content": [{"title": "Learning Fast Approximations", "url": LISTA}]},
                    "summary",
                ],
            },
        },
        {
            "type": "assistant",
            "message": {
                "content": [
                    {"type": "tool_use", "id": "wf", "name": "WebFetch", "input": {"url": LISTA, "prompt": "read"}},
                    {"type": "tool_use", "id": "wf2", "name": "WebFetch", "input": {"url": CODE, "prompt": "read"}},
                    {
                        "type": "tool_use",
                        "id": "wf3",
                        "name": "WebFetch",
                        "input": {"url": "https://x.example", "prompt": "read"},
                    },
                ]
            },
        },
        {
            "type": "user",
            "message": {"content": [{"type": "tool_result", "tool_use_id": "wf", "content": "..."}]},
            "tool_use_result": {"url": LISTA, "code": 200, "codeText": "OK", "result": "...", "bytes": 10},
        },
        {
            "type": "user",
            "message": {"content": [{"type": "tool_result", "tool_use_id": "wf2", "content": "gone"}]},
            "tool_use_result": {"url": CODE, "code": 404, "codeText": "Not Found"},
        },
        {
            "type": "user",
            "message": {
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "wf3",
                        "is_error": True,
                        "content": "Claude requested permissions to use WebFetch",
                    }
                ]
            },
        },
    ]
    assert stream_sources(events) == [{"url": LISTA, "title": "Learning Fast Approximations"}]


def test_markdown_links_and_the_readme_section_are_escaped_and_idempotent():
    link = markdown_link({"url": "https://example.com/a(b)<c>", "title": HOSTILE_TITLE})
    assert link.startswith("[\\[click me\\]\\(javascript:alert\\(1\\)\\) \\<img") and "\n" not in link
    assert link.endswith("](https://example.com/a%28b%29%3Cc%3E)") and "\\$" in link and "\\*\\*bold" in link
    assert clean_sources([{"url": "data:text/html,x"}, {"url": "file:///etc/passwd"}, {"url": "ftp://a.b/c"}]) == []
    agent_text = (
        f"# My sprint\n\nnotes\n\n{README_START}\n## Sources\n- [forged](https://forged.example)\n"
        f"{README_END}\n\nmore notes {README_END}\n"
    )
    once = readme_with_sources(agent_text, [{"url": LISTA, "title": "LISTA"}])
    assert readme_with_sources(once, [{"url": LISTA, "title": "LISTA"}]) == once  # idempotent
    assert "forged" not in once and once.count(README_START) == 1 and once.count(README_END) == 1
    assert once.startswith("# My sprint\n\nnotes") and "more notes" in once and f"- [LISTA]({LISTA})" in once
    assert "None: no web page was fetched or cited." in readme_with_sources("# x\n", [])


def test_searches_are_priced_per_use_and_fetches_by_their_tokens():
    from anthropic.types import ServerToolUsage, Usage

    usage = usage_dict(
        Usage(
            input_tokens=1000,
            output_tokens=100,
            server_tool_use=ServerToolUsage(web_search_requests=3, web_fetch_requests=2),
        )
    )
    assert usage["web_search_requests"] == 3 and usage["web_fetch_requests"] == 2
    assert Price(3.0, 15.0).cost(usage) == pytest.approx(0.003 + 0.0015 + 0.03)
    assert Price(0.0, 0.0).cost({"web_fetch_requests": 4}) == 0.0
    assert "web_search_requests" not in usage_dict(Usage(input_tokens=1, output_tokens=1))


# -- the anthropic backend against the fake API --------------------------------------------


def test_a_paused_turn_is_continued_and_its_blocks_go_back_unchanged(tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-fake")

    def policy(body: dict):
        if turn_of(body) == 0:  # the server pauses with a fetch still pending
            return {
                "content": [*search(0, "lista", [(LISTA, "Learning Fast Approximations")]), fetch_call(0, LISTA)],
                "stop_reason": "pause_turn",
                "usage": {"server_tool_use": {"web_search_requests": 1}},
            }
        return {
            "content": [
                fetch_result(0, LISTA, "Learning Fast Approximations of Sparse Coding"),
                cited("LISTA unrolls ISTA.", CODE, "lista code"),
                use("finish", PROPOSAL),
            ],
            "usage": {"server_tool_use": {"web_fetch_requests": 1}},
        }

    with FakeMessagesAPI(policy) as api:
        bot = agent(api.url)
        proposal = bot.propose(context(tmp_path))
    first, second = api.requests
    assert web_tools(first) == {
        "web_search": {
            "type": "web_search_20250305",
            "name": "web_search",
            "max_uses": 3,
            "allowed_domains": ["arxiv.org", "github.com"],
        },
        "web_fetch": {**server_tools(SETTINGS, "propose", [])[1]},
    }
    assert all(h.get("anthropic-beta") == FETCH_BETA for h in api.headers)
    assert [m["role"] for m in second["messages"]] == ["user", "assistant"]  # no user message in between
    sent = second["messages"][-1]["content"]
    assert sent[:2] == search(0, "lista", [(LISTA, "Learning Fast Approximations")])
    assert {k: v for k, v in sent[2].items() if k != "cache_control"} == fetch_call(0, LISTA)  # the pending call
    assert sent[1]["content"][0]["encrypted_content"] == "ENC-0-0"  # unchanged, as the API needs it
    assert {k: t["max_uses"] for k, t in web_tools(second).items()} == {"web_search": 2, "web_fetch": 2}
    assert proposal.sources == [
        {"url": LISTA, "title": "Learning Fast Approximations of Sparse Coding"},
        {"url": CODE, "title": "lista code"},
    ]
    assert proposal.origin.startswith("LISTA (Gregor & LeCun 2010)")
    assert bot.tokens["web_search_requests"] == 1 and bot.tokens["web_fetch_requests"] == 1
    assert bot.cost_usd == pytest.approx(2 * Price(3.0, 15.0).cost(api.usage) + 0.01)
    assert sum(
        r.get("cost_usd", 0) for r in Transcript(tmp_path / "record" / "propose.jsonl").records()
    ) == pytest.approx(bot.cost_usd)


def test_a_resumed_paused_turn_goes_on_and_keeps_its_sources(tmp_path, monkeypatch):
    """A kill after a paused response: the conversation restored from the transcript goes on
    with the paused assistant message last (no "interrupted" user message), and the sources
    read before the kill are still the proposal's."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-fake")
    record = Transcript(tmp_path / "record" / "propose.jsonl")
    record.append({"message": {"role": "user", "content": "the prompt, before the kill"}})
    record.append(
        {
            "message": {
                "role": "assistant",
                "content": [fetch_call(0, LISTA), fetch_result(0, LISTA, "LISTA"), fetch_call(1, CODE)],
            },
            "usage": {"input_tokens": 10},
            "cost_usd": 0.5,
            "stop_reason": "pause_turn",
        }
    )
    with FakeMessagesAPI(lambda body: {"content": [fetch_result(1, CODE, "the code"), use("finish", PROPOSAL)]}) as api:
        bot = agent(api.url)
        proposal = bot.propose(context(tmp_path))
    [request] = api.requests
    assert [m["role"] for m in request["messages"]] == ["user", "assistant"]
    assert request["messages"][-1]["content"][-1]["id"] == "srvtoolu_fetch_1"
    assert web_tools(request)["web_fetch"]["max_uses"] == 1  # one fetch done before the kill, one pending
    assert proposal.sources == [{"url": LISTA, "title": "LISTA"}, {"url": CODE, "title": "the code"}]
    assert bot.cost_usd >= 0.5  # what was spent before the kill still counts


def test_with_literature_off_the_request_has_no_web_tool_and_no_beta(tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-fake")
    with FakeMessagesAPI(lambda body: [use("finish", PROPOSAL)]) as api:
        proposal = agent(api.url).propose(context(tmp_path, literature=None))
    [request] = api.requests
    assert web_tools(request) == {} and "anthropic-beta" not in {k.lower() for k in api.headers[0]}
    assert proposal.sources == [] and "Web search is off" in request["messages"][0]["content"][0]["text"]


def test_a_request_refused_over_its_web_tools_goes_on_without_them(tmp_path, monkeypatch):
    """A model or an organisation without web search: the API answers 400. The proposal is
    made without the web, as with literature off, and the reason is logged."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-fake")
    logged: list[str] = []
    with FakeMessagesAPI(lambda body: [use("finish", PROPOSAL)], faults={0: 400}) as api:
        ctx = context(tmp_path)
        ctx.log = logged.append
        proposal = agent(api.url).propose(ctx)
    refused, answered = api.requests
    assert web_tools(refused) and not web_tools(answered) and proposal.title == PROPOSAL["title"]
    assert any("going on without web search" in line for line in logged)
    with FakeMessagesAPI(lambda body: [use("finish", PROPOSAL)], faults={0: 400}) as api:
        with pytest.raises(AgentError, match="refused the request"):  # without web tools: refused as before
            agent(api.url).propose(context(tmp_path / "off", literature=None))


# -- one real sprint -----------------------------------------------------------------------


def literature_policy(body: dict):
    phase, turn = phase_of(body), turn_of(body)
    if phase == "propose":
        return {
            "content": [
                {"type": "text", "text": "One look at sparse coding first. I read https://model-says.example/x."},
                *search(
                    0,
                    "learned ISTA sparse coding",
                    [
                        (LISTA, "Learning Fast Approximations of Sparse Coding"),
                        ("https://arxiv.org/abs/0000.00000", "a hit never read"),
                    ],
                ),
                *search(1, "LISTA code", [(CODE, "lista code"), ("javascript:alert(1)", HOSTILE_TITLE)]),
                fetch_call(0, LISTA),
                fetch_result(0, LISTA, "Learning Fast Approximations of Sparse Coding"),
                cited("LISTA unrolls ISTA into a learned encoder.", CODE, HOSTILE_TITLE),
                use("finish", PROPOSAL),
            ],
            "usage": {"server_tool_use": {"web_search_requests": 2, "web_fetch_requests": 1}},
        }
    if phase == "implement":
        folder = sprint_folder(body)
        forged = (
            f"# LISTA\n\nidea, hypothesis, plan\n\n{README_START}\n- [forged](https://forged.example)\n{README_END}\n"
        )
        steps = [
            {
                "content": [
                    fetch_call(7, IMPL),
                    fetch_result(7, IMPL, "a LISTA implementation"),
                    use(
                        "str_replace_based_edit_tool",
                        {"command": "create", "path": f"{folder}/README.md", "file_text": forged},
                    ),
                ],
                "usage": {"server_tool_use": {"web_fetch_requests": 1}},
            },
            [
                use(
                    "str_replace_based_edit_tool",
                    {"command": "create", "path": f"{folder}/variant.py", "file_text": VARIANT},
                )
            ],
            [use("finish", {"summary": "done"})],
        ]
        return steps[min(turn, 2)]
    return [
        use(
            "finish",
            {
                "checks": "the LISTA step ran",
                "alternatives": ["seed noise"],
                "conclusion": "LIT-CONCLUSION",
                "next_steps": ["two steps"],
            },
        )
    ]


def test_a_sprint_records_its_sources_prices_its_searches_and_reports_them(project):
    with FakeMessagesAPI(literature_policy) as api:
        anthropic_project(project, api.url, price={"input": 0, "output": 0})  # only the searches cost money
        task = (
            (project / "TASK.md")
            .read_text()
            .replace(
                "  seed: 0\n",
                "  seed: 0\n  literature:\n    phases: [propose, implement]\n    max_searches: 3\n"
                "    max_fetches: 2\n    allowed_domains: [arxiv.org, github.com]\n",
            )
        )
        (project / "TASK.md").write_text(task)
        git.Repo(project).git.commit("-q", "-am", "literature settings")
        proc = autosae("sprint", cwd=project, env=ENV)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # (a) the tools, bounded as TASK.md says, in the phases it lists (propose, implement), never in conclude
    [propose] = api.answered("propose")
    assert {k: (t["max_uses"], t["allowed_domains"]) for k, t in web_tools(propose).items()} == {
        "web_search": (3, ["arxiv.org", "github.com"]),
        "web_fetch": (2, ["arxiv.org", "github.com"]),
    }
    assert api.headers[api.requests.index(propose)].get("anthropic-beta") == FETCH_BETA
    implement = api.answered("implement")
    assert {k: t["max_uses"] for k, t in web_tools(implement[0]).items()} == {"web_search": 3, "web_fetch": 2}
    assert {k: t["max_uses"] for k, t in web_tools(implement[1]).items()} == {"web_search": 3, "web_fetch": 1}
    assert api.answered("conclude") and all(web_tools(r) == {} for r in api.answered("conclude"))
    # (b) the sources: fetched or cited, from the tools' results, escaped, everywhere
    [row] = ledger(project)
    folder = project / "sprints" / row["id"]
    record = json.loads((folder / "sprint.json").read_text())
    assert [s["url"] for s in record["sources"]] == [LISTA, CODE, IMPL]  # proposing, then implementing
    assert record["origin"] == PROPOSAL["origin"]
    readme = (folder / "README.md").read_text()
    assert readme.startswith("# LISTA\n\nidea, hypothesis, plan") and "forged" not in readme
    assert f"- [Learning Fast Approximations of Sparse Coding]({LISTA})" in readme and CODE in readme
    md = (folder / "report.md").read_text()
    assert "## Sources" in md and f"]({LISTA})" in md and PROPOSAL["origin"] in md
    assert "| web tools | searches: 2 ($0.01 each, in the agent cost); pages fetched: 2" in md
    for text in (readme, md):
        assert (
            "model-says" not in text
            and "0000.00000" not in text
            and "javascript" not in text.replace("javascript:alert\\(1\\)", "")
        )  # only inside an escaped title, never as a link
        assert " <img" not in text and "\\<img" in text and "](javascript" not in text  # escaped, inert
    pdf = pdftools.text(folder / "report.pdf")
    assert "Sources" in pdf and "Learning Fast Approximations of Sparse Coding" in pdf and "arxiv.org/abs" in pdf
    # (c) priced: $0.01 per search, fetches free (tokens priced at 0 here)
    cost = json.loads((folder / "cost.json").read_text())
    assert cost["cost_usd"] == pytest.approx(0.02) and row["cost_usd"] == pytest.approx(0.02)
    assert cost["tokens"]["web_search_requests"] == 2 and cost["tokens"]["web_fetch_requests"] == 2
