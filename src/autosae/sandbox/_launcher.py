"""The launcher: a small python process between us and the sandboxed command.

It joins the sandbox's cgroups and sets the rlimits on itself, then forks and execs the command
(bwrap, or the bare command when not sandboxed), so every bound holds from the command's first
instruction: no window, and no preexec_fn (which is not safe in a threaded harness). Under a
root autosae it also makes the user namespace in which bwrap runs the sandbox as the unprivileged
sandbox user (autosae.sandbox.identity): a single-threaded process is where that fork belongs.

It stays the command's parent rather than exec'ing it, for two reasons:
- bwrap --die-with-parent uses PR_SET_PDEATHSIG, whose "parent" is the *thread* that forked:
  started straight from a harness thread that later ends, bwrap would be killed with it. The
  launcher is single-threaded and lives exactly as long as the command.
- when our whole process dies (crash, SIGKILL) the launcher notices it was re-parented and kills
  the tree (bwrap, and everything in the cgroups), so nothing outlives the harness.
SIGTERM/SIGINT/SIGHUP/SIGQUIT sent to it are forwarded to the command; its exit status mirrors
the command's (a signal death is re-raised on itself).
"""

from __future__ import annotations

import json
import sys

SOURCE = r"""
import json, os, resource, signal, sys
cfg = json.loads(sys.argv[1])
argv = sys.argv[2:]

def fail(message, code=125):
    os.write(2, ("autosae sandbox launcher: " + message + "\n").encode(errors="replace"))
    os._exit(code)

for d in cfg["cgroups"]:
    try:
        with open(os.path.join(d, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))
    except OSError as e:
        fail("cannot join cgroup %s: %s" % (d, e))
for name, value in cfg["rlimits"]:
    which = getattr(resource, name)
    hard = resource.getrlimit(which)[1]
    value = value if hard == resource.RLIM_INFINITY else min(value, hard)
    try:
        resource.setrlimit(which, (value, value))
    except (OSError, ValueError) as e:
        fail("cannot set %s: %s" % (name, e))

def user_namespace(maps):
    # A new user namespace with these uid/gid maps (written from here, as root: only the parent
    # namespace may map ids other than the creator's) in which no further user namespace can be
    # made; returns an fd of it. A short-lived child creates it and sets its limit (from inside,
    # where the creator holds every capability), then exits: the fd keeps it.
    import ctypes

    made, go = os.pipe(), os.pipe()
    child = os.fork()
    if child == 0:
        os.close(made[0])
        os.close(go[1])
        if ctypes.CDLL(None, use_errno=True).unshare(0x10000000) != 0:  # CLONE_NEWUSER
            os.write(2, ("unshare: " + os.strerror(ctypes.get_errno()) + "\n").encode())
            os._exit(1)
        os.write(made[1], b"1")
        if os.read(go[0], 1) != b"1":
            os._exit(1)
        try:
            with open("/proc/sys/user/max_user_namespaces", "w") as f:
                f.write("0")
        except OSError as e:
            os.write(2, ("max_user_namespaces: " + str(e) + "\n").encode())
            os._exit(1)
        os._exit(0)
    os.close(made[1])
    os.close(go[0])
    ok = os.read(made[0], 1) == b"1"
    try:
        if ok:
            for name in ("uid_map", "gid_map"):
                with open("/proc/%d/%s" % (child, name), "w") as f:
                    f.write(maps[name])
            fd = os.open("/proc/%d/ns/user" % child, os.O_RDONLY)
            os.write(go[1], b"1")
    except OSError as e:
        os.write(2, ("autosae sandbox launcher: user namespace: %s\n" % e).encode())
        ok = False
    os.close(go[1])
    status = os.waitpid(child, 0)[1]
    if not ok or status != 0:
        fail("cannot make the sandbox's user namespace (see above)")
    os.set_inheritable(fd, True)
    return fd


if cfg["userns"]:
    # bwrap enters it with --userns (its --uid/--gid are already on the command line) and no
    # supplementary group of ours (root's groups would still count inside).
    argv[1:1] = ["--userns", str(user_namespace(cfg["userns"]))]

ppid = os.getppid()
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGCHLD])
pid = os.fork()
if pid == 0:
    try:
        if cfg["userns"]:
            os.setgroups([])
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        for s in (signal.SIGPIPE, signal.SIGXFSZ):  # python ignores these: restore the defaults
            signal.signal(s, signal.SIG_DFL)
        os.execvp(argv[0], argv)
    except BaseException as e:
        fail("cannot run %s: %s" % (argv[0], e), 127)

def forward(sig, frame):
    try:
        os.kill(pid, sig)
    except OSError:
        pass

for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
    signal.signal(s, forward)

def kill_tree():
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
    for d in cfg["cgroups"]:
        try:
            with open(os.path.join(d, "cgroup.procs")) as f:
                for p in f.read().split():
                    if int(p) != os.getpid():
                        os.kill(int(p), signal.SIGKILL)
        except OSError:
            pass

while True:
    signal.sigtimedwait([signal.SIGCHLD], 1.0)
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        break
    if os.getppid() != ppid:  # the harness died: take the tree with us
        kill_tree()

code = os.waitstatus_to_exitcode(status)
if code < 0:
    try:
        signal.signal(-code, signal.SIG_DFL)  # EINVAL for SIGKILL, which needs no reset
    except (OSError, ValueError):
        pass
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [-code])
    os.kill(os.getpid(), -code)
os._exit(code & 0xFF if code >= 0 else 128 - code)
"""


def launcher_argv(
    cgroups: list[str], rlimits: list[tuple[str, int]], argv: list[str], userns: dict[str, str] | None = None
) -> list[str]:
    """The command line that starts `argv` inside the cgroups with the rlimits set; with
    `userns` ({"uid_map", "gid_map"}), argv is a bwrap command line that gets `--userns FD`,
    a user namespace with those maps (see autosae.sandbox.identity). `-I -S`: nothing of the
    environment or site-packages affects the launcher itself."""
    config = json.dumps({"cgroups": cgroups, "rlimits": rlimits, "userns": userns})
    return [sys.executable, "-I", "-S", "-c", SOURCE, config, *argv]
