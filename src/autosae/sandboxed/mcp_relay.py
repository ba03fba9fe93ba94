"""The stdio end of autosae's tools for a Claude Code session: `python -I -m
autosae.sandboxed.mcp_relay SOCKET`.

Claude Code starts this inside its sandbox as the MCP server named in `--mcp-config` (the stdio
transport); it copies bytes, both ways, between its stdin/stdout and the unix socket on which
autosae's trusted process serves the tools (autosae.agents.mcp_server). It understands nothing
of what it carries and holds no secret: everything it relays is checked on the other side, and
nothing it could do from here reaches more than the session itself can. Standard library only.
"""

from __future__ import annotations

import os
import socket
import sys
import threading

CHUNK = 1 << 16


def pump(read, write, done: threading.Event) -> None:
    """Copy from `read` (a callable returning bytes, b"" at the end) to `write` until either end closes."""
    try:
        while data := read(CHUNK):
            write(data)
    except OSError:
        pass
    finally:
        done.set()


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -I -m autosae.sandboxed.mcp_relay SOCKET", file=sys.stderr)
        return 2
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:  # from its folder: a unix socket's path may not exceed 107 bytes
        os.chdir(os.path.dirname(argv[0]) or ".")
        sock.connect(os.path.basename(argv[0]))
    except OSError as exc:
        print(f"autosae's tools are unreachable at {argv[0]}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()

    def to_stdout(data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(stdout, view) :]

    done = threading.Event()
    for read, write in ((lambda n: os.read(stdin, n), sock.sendall), (sock.recv, to_stdout)):
        threading.Thread(target=pump, args=(read, write, done), daemon=True).start()
    done.wait()  # either side closed: Claude Code ended the server, or autosae closed the socket
    sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
