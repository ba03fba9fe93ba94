"""`autosae slack`: the project's Slack app, in Socket Mode (no public URL: it dials out, so it
runs on a GPU server behind a firewall). It binds to one project and one channel:

- feed: one thread per sprint (its proposal, each phase, its verdict, report.pdf and the
  scores figure), posted from the sprint states and records the loop writes; the loop never
  waits on Slack, which is another process (autosae.slack.feed);
- commands: `idea: ...` (or a mention) queues an idea; `status`, `leaderboard`, `show <id>`
  answer; `stop` stops the loop after its sprint; `verify <id>` queues a held-out
  verification; a reply in a sprint's thread is the researcher's comment on it, which later
  proposals see. Only the users on TASK.md's slack.allow list may change anything
  (autosae.slack.commands).

Nothing from Slack is executed: commands are matched words, and their arguments are data (an
idea's text, a sprint id). Everything posted that an agent wrote is escaped, so it cannot
mention anyone, broadcast to the channel or hide a link (autosae.slack.text).
"""
