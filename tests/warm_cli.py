"""`python -m autosae ARGS` for the tests, forked from a warm interpreter instead of started cold.

Each `autosae` command a test runs is a real process running the real entry point, exactly as
`python -m autosae` runs it (runpy, the same argv, the test's cwd and environment, stdout and
stderr captured, its exit code or signal). What it skips is the interpreter's start: a fresh
`autosae sprint` imports typer, pydantic, git, jinja, matplotlib (and torch and sae_lens,
seven seconds of CPU, when it trains), and the suite runs some 130 commands. So the session
starts one server (the first xdist worker that needs it, under a lock; it ends with the xdist
controller) that imports them once and forks a child per command; the child takes the command's
environment, working folder, stdio and argv in its own process group, runs `autosae.__main__`,
then exits as an interpreter does (threads joined, atexit handlers run).

`run` captures a finished command's output (subprocess.run); `start` leaves it running on pipes
the test reads, signals and waits on (subprocess.Popen). Tests that draw on a terminal, time
`--help`'s imports or give the command another HOME (the red-team sprint: modules the server
imported read HOME then) start their commands cold, as a user's shell would. AUTOSAE_TEST_COLD=1 makes
every command cold (the suite passes both ways).

The server takes one request per connection: a byte carrying the pipes, if any, as SCM_RIGHTS
(the command's stdout and stderr; without them, its output goes into the files `out` and `err`
name), then a JSON line {args, cwd, env, out, err}. It answers {"pid": N} once the child is forked and {"returncode": R} when it ends (-N
when a signal N ended it, as subprocess reports it). It waits on the children through pidfds,
in one thread, so that it never forks while another thread holds a lock.
"""

from __future__ import annotations

import json
import os
import select
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

COLD = "AUTOSAE_TEST_COLD"
PRELOAD = (
    "torch",
    "sae_lens",
    "autosae.saelens",
    "autosae.cli",
    "autosae.sprint.engine",
    "autosae.sprint.loop",
    "autosae.report.sprint",
    "autosae.report.leaderboard",
    "autosae.report.figures",
    "autosae.harness.run",
    "autosae.harness.local",
    "autosae.bench.build",
    "autosae.bench.metrics",
    "autosae.agents.claude_api",
    "autosae.transfer.core",
)
"""What the server imports before it forks: what the commands the tests run import anyway."""

_where: dict = {}


def configure(folder: Path, owner: int) -> None:
    """Where the session's one server lives (a folder every xdist worker sees) and the process
    whose end ends it (the xdist controller, or pytest itself without xdist)."""
    folder.mkdir(parents=True, exist_ok=True)
    _where.update(folder=folder, owner=owner)


def run(args: list[str], cwd: Path | None, env: dict, timeout: float | None) -> subprocess.CompletedProcess:
    """`python -m autosae ARGS` run to its end; the same result subprocess.run(capture_output=True,
    text=True) gives, or its TimeoutExpired."""
    argv = [sys.executable, "-m", "autosae", *args]
    if os.environ.get(COLD):
        return subprocess.run(argv, capture_output=True, text=True, cwd=cwd, timeout=timeout, env=env)
    with tempfile.TemporaryDirectory(prefix="autosae-cli-") as tmp:
        out, err = Path(tmp) / "out", Path(tmp) / "err"
        proc = _launch(argv, cwd, env, [], {"out": str(out), "err": str(err)})
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _kill(proc.pid)
            proc.wait(30)  # its end, once killed
            raise subprocess.TimeoutExpired(argv, timeout, _text(out), _text(err)) from None
        return subprocess.CompletedProcess(argv, proc.returncode, _text(out), _text(err))


def _text(path: Path) -> str:
    """What the command wrote there: nothing when it was killed before it opened the file."""
    return path.read_text() if path.exists() else ""


def start(args: list[str], cwd: Path | None, env: dict, stderr=subprocess.STDOUT):
    """`python -m autosae ARGS` left running, its stdout (and stderr, or its stderr apart with
    stderr=subprocess.PIPE) on pipes the test reads as it runs: a WarmProcess, which answers as
    the subprocess.Popen(text=True) a cold start gives."""
    argv = [sys.executable, "-m", "autosae", *args]
    if os.environ.get(COLD):
        return subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe() if stderr == subprocess.PIPE else (None, out_w)
    try:
        return _launch(
            argv, cwd, env, [out_w, err_w], {}, os.fdopen(out_r), os.fdopen(err_r) if err_r is not None else None
        )
    finally:
        for fd in {out_w, err_w}:
            os.close(fd)  # the child's now: the test's pipes end when the command's copies do


def _launch(argv: list[str], cwd: Path | None, env: dict, fds: list[int], files: dict, stdout=None, stderr=None):
    """Ask the server for the command: its output into `fds` (stdout's, stderr's) if given, else
    into the files named by `files` (out, err)."""
    conn = _connect()
    request = {"args": argv[3:], "cwd": str(cwd or os.getcwd()), "env": env, **files}
    socket.send_fds(conn, [b"\0"], fds)  # one byte, to carry the pipes
    conn.sendall(json.dumps(request).encode() + b"\n")
    return WarmProcess(argv, conn, stdout, stderr)


class WarmProcess:
    """The part of subprocess.Popen the tests use, for a command the warm server forked."""

    def __init__(self, args, conn: socket.socket, stdout, stderr) -> None:
        self.args, self.stdout, self.stderr = args, stdout, stderr
        self._conn, self._buffer = conn, b""
        self.pid = json.loads(self._line(None))["pid"]
        self.returncode: int | None = None

    def _line(self, timeout: float | None) -> bytes:
        """The server's next line (its pid, then its exit code); TimeoutError after `timeout`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                if not select.select([self._conn], [], [], 0)[0]:
                    raise TimeoutError
            else:
                self._conn.settimeout(left)
            chunk = self._conn.recv(4096)
            if not chunk:
                raise RuntimeError("the warm CLI server closed the connection")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            try:
                line = self._line(timeout)
            except TimeoutError:
                raise subprocess.TimeoutExpired(self.args, timeout) from None
            self.returncode = json.loads(line)["returncode"]
            self._conn.close()
        return self.returncode

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                return self.wait(0)
            except subprocess.TimeoutExpired:
                return None
        return self.returncode

    def communicate(self, timeout: float | None = None) -> tuple[str | None, str | None]:
        """What is left on its pipes, once it has ended (read side by side, so that neither
        pipe fills while the other is read)."""
        found: dict = {}
        readers = [
            threading.Thread(target=lambda n=name, f=f: found.__setitem__(n, f.read()), daemon=True)
            for name, f in (("out", self.stdout), ("err", self.stderr))
            if f is not None
        ]
        for reader in readers:
            reader.start()
        deadline = None if timeout is None else time.monotonic() + timeout
        for reader in readers:
            reader.join(None if deadline is None else max(0, deadline - time.monotonic()))
            if reader.is_alive():
                raise subprocess.TimeoutExpired(self.args, timeout)
        self.wait(None if deadline is None else max(1, deadline - time.monotonic()))
        return found.get("out"), found.get("err")

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        for f in (self.stdout, self.stderr):
            if f is not None:
                f.close()
        self.wait()


def _kill(pid: int) -> None:
    for target in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
        try:
            target()
        except (ProcessLookupError, PermissionError):
            pass


def _connect() -> socket.socket:
    """A connection to the session's server, started by the first worker that needs it (under
    a lock, so that one starts)."""
    import fcntl

    if not _where:
        configure(Path(tempfile.mkdtemp(prefix="autosae-warm-")), os.getpid())
    folder, owner = _where["folder"], _where["owner"]
    path = str(folder / "socket")
    for _ in range(2):  # connect; else start it and connect again
        conn = socket.socket(socket.AF_UNIX)
        try:
            conn.connect(path)
            return conn
        except (FileNotFoundError, ConnectionRefusedError):
            conn.close()
        with open(folder / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            probe = socket.socket(socket.AF_UNIX)
            try:
                probe.connect(path)  # another worker started it meanwhile
                return probe
            except (FileNotFoundError, ConnectionRefusedError):
                probe.close()
            _start(folder, owner)
    raise RuntimeError(f"the warm CLI server at {path} does not answer")


def _start(folder: Path, owner: int) -> None:
    path = folder / "socket"
    path.unlink(missing_ok=True)
    log = folder / "server.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.warm_cli", str(path), str(owner)],
        cwd=Path(__file__).parent.parent,
        env={**os.environ, "TQDM_DISABLE": "1"},  # what main() sets off a terminal, before tqdm's import
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=open(log, "w"),
        start_new_session=True,  # no worker's signals; it ends when `owner` does
    )
    deadline = time.monotonic() + 120
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the warm CLI server did not start: {log.read_text()[-2000:]}")
        time.sleep(0.05)
    _where["proc"] = proc


def stop() -> None:
    """End the server now if this process started it for itself (without xdist)."""
    proc = _where.get("proc")
    if proc is not None and _where.get("owner") == os.getpid() and proc.poll() is None:
        proc.kill()
        proc.wait()


# --- the server side ---------------------------------------------------------------------------


def _serve(path: str, owner: int) -> None:
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)
    from autosae.report.figures import pdf_matplotlib

    pdf_matplotlib()  # pyplot on Agg, with its font cache read
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path + ".tmp")
    os.rename(path + ".tmp", path)
    listener.listen(64)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, None)
    while _alive(owner):  # gone with the test session
        for key, _ in selector.select(timeout=1):
            if key.data is None:
                conn, _ = listener.accept()
                _, fds, _, _ = socket.recv_fds(conn, 1, 2)  # the byte, and the pipes it brings
                request = json.loads(conn.makefile("r").readline())
                request["fds"] = fds
                pid = os.fork()
                if pid == 0:
                    for other in list(selector.get_map().values()):
                        if other.data is not None:
                            os.close(other.fd)  # the other children's pidfds
                    selector.close()
                    listener.close()
                    conn.close()
                    _child(request)  # never returns
                for fd in fds:
                    os.close(fd)  # the child's now
                conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
                selector.register(os.pidfd_open(pid), selectors.EVENT_READ, (pid, conn))
            else:
                pid, conn = key.data
                selector.unregister(key.fd)
                os.close(key.fd)
                _, status = os.waitpid(pid, 0)
                code = os.waitstatus_to_exitcode(status)
                try:
                    conn.sendall(json.dumps({"returncode": code}).encode() + b"\n")
                except OSError:  # the test gave up on it (a timeout)
                    pass
                conn.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _child(request: dict) -> None:
    """Become `python -m autosae ARGS` in the request's folder, environment and stdio."""
    import atexit
    import runpy
    import traceback

    code = 1
    try:
        os.setpgid(0, 0)  # a group of its own, so that a timeout kills what it started too
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.chdir(request["cwd"])
        sys.path[0] = os.getcwd()  # `python -m` puts the working folder first, as the server's was
        os.environ.clear()
        os.environ.update(request["env"])
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        if request["fds"]:  # pipes the test reads
            out, err = request["fds"]
            os.dup2(out, 1)
            os.dup2(err, 2)
            for fd in {out, err}:
                os.close(fd)
        else:
            for fd, name in ((1, "out"), (2, "err")):
                target = os.open(request[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                os.dup2(target, fd)
                os.close(target)
        sys.argv = ["-m", *request["args"]]  # runpy sets argv[0] to autosae/__main__.py, as `-m` does
        try:
            runpy.run_module("autosae", run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as exc:
            if exc.code is None or isinstance(exc.code, int):
                code = exc.code or 0
            else:
                print(exc.code, file=sys.stderr)
                code = 1
        except BaseException:
            traceback.print_exc()
            code = 1
        threading._shutdown()  # as the interpreter does at exit: wait for its threads, then atexit
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(code)


if __name__ == "__main__":
    _serve(sys.argv[1], int(sys.argv[2]))
