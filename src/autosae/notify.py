"""Slack notices: each sprint's verdict, headline numbers and report path, and the loop's stop
and why. The webhook is AUTOSAE_SLACK_WEBHOOK when set, else TASK.md's notify.slack_webhook.
A notice that cannot be sent is logged and dropped: it never stops or slows the loop for long.
"""

from __future__ import annotations

import http.client
import json
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from autosae.report.escape import mrkdwn, one_line
from autosae.report.format import fmt_pm

ENV = "AUTOSAE_SLACK_WEBHOOK"
TIMEOUT_S = 10.0


def webhook_url(config) -> str | None:
    return os.environ.get(ENV) or getattr(getattr(config, "notify", None), "slack_webhook", None)


def post(url: str | None, text: str, log: Callable[[str], None]) -> bool:
    """POST {"text": text} to a Slack incoming webhook; False (and a log line) on any failure."""
    if not url:
        return False
    request = urllib.request.Request(
        url, data=json.dumps({"text": text}).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            response.read()
        return True
    except urllib.error.HTTPError as exc:
        log(f"slack notice not sent: the webhook answered HTTP {exc.code}")
    except (TimeoutError, OSError, ValueError, http.client.HTTPException) as exc:
        log(f"slack notice not sent: {getattr(exc, 'reason', None) or exc}")
    return False


def sprint_notice(project_name: str, row: dict, report: Path) -> str:
    """The one-way notice of a sprint's end. Agent text (the title, the reason) is escaped for
    mrkdwn: a `<!channel>` in a title shows as typed and notifies nobody."""
    verdict = mrkdwn(row.get("verdict") or "?")
    head = f"*{mrkdwn(project_name)}* sprint `{mrkdwn(row.get('id'))}`: *{verdict}*"
    head += (" (new best)" if row.get("new_best") else "") + (" (no-op)" if row.get("noop") else "")
    lines = [head, mrkdwn(one_line(row.get("title"), 300))]
    if row.get("f1") or row.get("mcc"):
        delta = row.get("delta_parent")
        lines.append(
            f"F1 {fmt_pm(row.get('f1'), 4)} · MCC {fmt_pm(row.get('mcc'), 4)}"
            + (f" · Δ{(row.get('objective') or 'f1').upper()} vs parent {delta:+.4f}" if delta is not None else "")
            + (f" (p = {row['p_value']:.3g})" if row.get("p_value") is not None else "")
        )
    else:
        lines.append(f"why: {mrkdwn(row.get('reason') or 'no scores', 800)}")
    lines.append(f"report: {mrkdwn(report)}")
    return "\n".join(lines)


def loop_notice(project_name: str, sprints: int, reason: str, best: dict | None) -> str:
    text = (
        f"*{mrkdwn(project_name)}*: the autosae loop stopped after {sprints} sprint{'s' if sprints != 1 else ''}: "
        f"{mrkdwn(reason, 800)}"
    )
    if best:
        text += f"\nbest so far: `{mrkdwn(best.get('id'))}` {mrkdwn(one_line(best.get('title'), 300))}, F1 {fmt_pm(best.get('f1'), 4)}, MCC {fmt_pm(best.get('mcc'), 4)}"
    return text


def ladder_notice(project_name: str, text: str) -> str:
    """A rung of the stuck ladder taken (or the ladder reset), for Slack."""
    return f"*{mrkdwn(project_name)}*: {mrkdwn(text, 800)}"
