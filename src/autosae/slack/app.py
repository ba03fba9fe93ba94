"""The Slack app's process: a Bolt app on Socket Mode for the channel's messages
(autosae.slack.commands) and, in its main thread, the sprint feed (autosae.slack.feed).

Tokens come from the environment only (SLACK_BOT_TOKEN: xoxb-, SLACK_APP_TOKEN: xapp-),
never from TASK.md, and this process never starts an agent or a variant, so no sandbox can
see them. Slack's rate limits (HTTP 429 with Retry-After), its 5xx answers and dropped
connections are ridden out: every Web API call is retried with back-off, the socket
reconnects by itself, and a post that still fails is tried again at the next poll."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass

from autosae.errors import AutosaeError

BOT_TOKEN, APP_TOKEN = "SLACK_BOT_TOKEN", "SLACK_APP_TOKEN"
API_URL = "AUTOSAE_SLACK_API_URL"
"""The Web API's base URL (default Slack's, https://slack.com/api/): for Slack GovSlack, a
proxy, or the tests' local fake Slack."""
RETRIES = 6


@dataclass
class Tokens:
    bot: str
    app: str


def tokens_from_env(environ=os.environ) -> Tokens:
    bot, app = environ.get(BOT_TOKEN, ""), environ.get(APP_TOKEN, "")
    missing = [name for name, value in ((BOT_TOKEN, bot), (APP_TOKEN, app)) if not value]
    if missing:
        raise AutosaeError(
            f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set: the Slack app's tokens come "
            "from the environment (README: Slack), never from TASK.md"
        )
    if not bot.startswith("xoxb-") or not app.startswith("xapp-"):
        raise AutosaeError(f"{BOT_TOKEN} must be a bot token (xoxb-...) and {APP_TOKEN} an app-level token (xapp-...)")
    return Tokens(bot, app)


def web_client(token: str):
    """A WebClient that retries rate limits, server errors and connection errors with back-off."""
    from slack_sdk import WebClient
    from slack_sdk.http_retry.builtin_handlers import (
        ConnectionErrorRetryHandler,
        RateLimitErrorRetryHandler,
        ServerErrorRetryHandler,
    )

    kwargs = {"base_url": os.environ[API_URL]} if os.environ.get(API_URL) else {}
    return WebClient(
        token=token,
        timeout=30,
        retry_handlers=[
            RateLimitErrorRetryHandler(max_retry_count=RETRIES),
            ServerErrorRetryHandler(max_retry_count=RETRIES),
            ConnectionErrorRetryHandler(max_retry_count=RETRIES),
        ],
        **kwargs,
    )


def channel_for(project, channel: str | None) -> str:
    from autosae.config import load_task
    from autosae.settings import SLACK_CHANNEL

    channel = channel or load_task(project.task_path).config.slack.channel
    if not channel:
        raise AutosaeError("no Slack channel: set slack.channel in TASK.md or pass --channel C0123ABCD")
    if not SLACK_CHANNEL.match(channel):
        raise AutosaeError(f"--channel {channel!r}: expected a Slack channel id like C0123ABCD")
    return channel


def connect(client, say: Callable[[str], None], stop: threading.Event, first_wait: float = 5.0):
    """auth.test until Slack answers: a refused token stops the app in one line; Slack out of
    reach (an outage, the server's network not up yet) is waited out with back-off, up to
    five minutes between tries. None when stopped meanwhile."""
    from slack_sdk.errors import SlackApiError

    wait = first_wait
    while not stop.is_set():
        try:
            return client.auth_test()
        except SlackApiError as exc:
            raise AutosaeError(f"Slack refused the bot token: {exc.response.get('error')}") from None
        except Exception as exc:  # noqa: BLE001 (urllib's and socket's errors: Slack is out of reach)
            say(f"slack: Slack is out of reach ({exc}); trying again in {wait:.0f} s")
            stop.wait(wait)
            wait = min(wait * 2, 300.0)
    return None


def serve(
    project,
    channel: str | None,
    tokens: Tokens,
    say: Callable[[str], None] = print,
    interval: float = 2.0,
    ping_interval: float = 10.0,
    stop: threading.Event | None = None,
) -> None:
    """Run the app until SIGTERM, SIGINT or `stop`: the socket in Bolt's threads, the feed here."""
    from slack_bolt import App
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    from autosae.slack.commands import Commands
    from autosae.slack.feed import Feed, run_feed

    channel = channel_for(project, channel)
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():  # first: a stop while connecting is heard
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    client = web_client(tokens.bot)
    me = connect(client, say, stop)
    if me is None:
        return
    log = logging.getLogger("autosae.slack")
    if not log.handlers:  # Bolt's and the socket's warnings (a dropped connection...), one line each
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("slack: %(levelname)s %(message)s"))
        log.addHandler(handler)
        log.addFilter(lambda record: "token` will be unused" not in record.getMessage())  # SLACK_BOT_TOKEN read twice
        log.propagate = False
    app = App(client=client, token_verification_enabled=False, logger=log)
    feed = Feed(project, client, channel, log=say)
    commands = Commands(project, feed, me.get("user_id"))

    @app.event("message")
    def on_message(event, client):
        if event.get("channel") != channel:
            return
        answer = commands.answer(event)
        if answer is None:
            return
        client.chat_postMessage(
            channel=channel, text=answer.text, thread_ts=answer.thread, unfurl_links=False, unfurl_media=False
        )
        say(f"slack: <{event.get('user')}> {(event.get('text') or '')[:80]!r} -> {answer.text.splitlines()[0][:80]}")

    @app.event("app_mention")
    def on_mention():  # a mention also arrives as a message event, which answers it
        return None

    socket = SocketModeHandler(app, tokens.app, web_client=web_client(tokens.bot), ping_interval=ping_interval)
    socket.connect()
    say(f"slack: connected as {me.get('user')} to channel {channel} for {project.root}")
    try:
        run_feed(feed, stop.is_set, interval)
    finally:
        socket.close()
        say("slack: disconnected")
