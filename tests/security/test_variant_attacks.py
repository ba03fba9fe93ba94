"""Red team: hostile variants through the real harness in the real sandbox. Each attack must
fail to get through, and the attempt must end as a clean record (a failed, rejected or honest
run), never a traceback in our process or a changed file on the host."""

from __future__ import annotations

import ast
import os
import pickle
import sys
from pathlib import Path

import pytest

from autosae.bench.cache import cache_root
from autosae.harness.seal import key_path, verified
from autosae.sprint.project_secrets import draw_all, secrets_path
from tests.security.conftest import HONEST, attack, seed_dir, worker_log

pytestmark = pytest.mark.real_harness  # hostile variants in the real harness and sandbox


@pytest.mark.parametrize("payload", ["reduce", "unimportable", "schema", "flood"])
def test_a_reply_the_harness_would_unpickle_or_cannot_parse_fails_the_seed(quick, write_variant, tmp_path, payload):
    marker = tmp_path / "pwned"
    path = write_variant(
        HONEST,
        f"""
    import os, pickle

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch {marker}",))

    class Unimportable:
        pass

    PAYLOADS = {{
        "reduce": pickle.dumps(("ready", Evil())),
        "unimportable": pickle.dumps(("ready", Unimportable())),
        "schema": b'{{"tag": "ready", "architecture": {{"__class__": "x"}}, "parameters": 1, "width": 128}}\\n',
        "flood": b"{{" * (5 << 20),
    }}

    def build(spec):
        for fd in map(int, os.listdir("/proc/self/fd")):
            try:
                if fd and os.readlink(f"/proc/self/fd/{{fd}}").startswith("pipe:"):
                    os.write(fd, PAYLOADS["{payload}"] + b"\\n")
            except OSError:
                pass
        return BatchTopKSAE(spec.d_in, spec.width, spec.k)
    """,
    )
    results = attack(path, quick, tmp_path / "run")
    assert results["status"] == "failed" and results["failure_kind"] == "protocol", results["reason"]
    assert not marker.exists()
    assert verified(results)  # the failure is the harness's own, sealed record


def test_switching_the_guard_off_does_not_bring_back_the_ground_truth(quick, write_variant, tmp_path):
    path = write_variant(
        HONEST,
        """
    import builtins, importlib, importlib.util, os, sys

    def unwrap(fn):
        while getattr(fn, "_autosae_guard", False):
            fn = fn.__closure__[fn.__code__.co_freevars.index("original")].cell_contents
        return fn

    def build(spec):
        sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != "_Guard"]
        builtins.__import__ = unwrap(builtins.__import__)
        importlib.import_module = unwrap(importlib.import_module)
        found = importlib.util.find_spec("sae_lens")
        synthetic = os.path.join(found.submodule_search_locations[0], "synthetic")
        print("SYNTHETIC-FILES", sorted(os.listdir(synthetic)) if os.path.isdir(synthetic) else None)
        for target in ("sae_lens.synthetic.synthetic_model", "autosae.bench.build", "autosae.harness.run"):
            try:
                importlib.import_module(target)
                print("REGENERATED-WITH", target)
            except ImportError as exc:
                print("IMPORT-FAILED", target, type(exc).__name__)
        try:  # by path, not by name
            spec_ = importlib.util.spec_from_file_location("gen", os.path.join(synthetic, "synthetic_model.py"))
            spec_.loader.exec_module(importlib.util.module_from_spec(spec_))
            print("LOADED-BY-PATH")
        except (OSError, ImportError) as exc:
            print("PATH-FAILED", type(exc).__name__)
        return BatchTopKSAE(spec.d_in, spec.width, spec.k)
    """,
    )
    results = attack(path, quick, tmp_path / "run", time_limit_s=120)
    log = worker_log(tmp_path / "run")
    assert results["status"] == "ok", results.get("reason")  # it scores as the honest SAE it falls back to
    assert "SYNTHETIC-FILES []" in log and "PATH-FAILED" in log
    assert "REGENERATED-WITH" not in log and "LOADED-BY-PATH" not in log
    assert log.count("IMPORT-FAILED") == 3


@pytest.mark.parametrize("where", ["on_step_end", "training_loss", "eval"])
def test_training_outside_the_harness_step_is_rejected(quick, write_variant, tmp_path, where):
    path = write_variant(
        HONEST,
        f"""
    import torch

    class Greedy(BatchTopKSAE):
        def __init__(self, *args):
            super().__init__(*args)
            self.mine = None
            self.last = None

        def training_loss(self, x, step):
            out = super().training_loss(x, step)
            self.last = x
            if "{where}" == "training_loss":
                extra = super().training_loss(x, step)
                extra.loss.backward()  # a second pass on the same batch
            return out

        def on_step_end(self, step):
            if "{where}" == "on_step_end":
                if self.mine is None:
                    self.mine = torch.optim.SGD(self.parameters(), lr=1e-3)
                with torch.enable_grad():
                    self.mine.zero_grad()
                    super().training_loss(self.last, step).loss.backward()
                    self.mine.step()

        def encode(self, x):
            if "{where}" == "eval" and not self.training:
                with torch.enable_grad():
                    loss = (self.decode(super().encode(x)) - x).pow(2).sum()
                    torch.autograd.grad(loss, [self.W_dec])  # fitting the eval rows
            return super().encode(x)

    def build(spec):
        return Greedy(spec.d_in, spec.width, spec.k)
    """,
    )
    results = attack(path, quick, tmp_path / "run")
    assert results["status"] == "rejected" and results["failure_kind"] == "constraint:training", results
    assert "training outside the harness's step" in results["reason"]


def test_the_variant_cannot_write_a_result_anywhere_the_harness_reads(quick, write_variant, tmp_path):
    run = tmp_path / "run"
    targets = [
        run / "results.json",
        seed_dir(run) / "results.json",
        cache_root() / "heldout-runs" / "forged" / "results.json",
        cache_root() / "baselines" / "forged" / "results.json",
        tmp_path / "project" / ".autosae" / "x",
    ]
    path = write_variant(
        HONEST,
        f"""
    import json, os

    def build(spec):
        for target in {[str(t) for t in targets]!r}:
            try:
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with open(target, "w") as f:
                    json.dump({{"status": "ok", "summary": {{"f1": {{"mean": 0.99}}}}}}, f)
                print("WROTE", target)
            except OSError as exc:
                print("WRITE-FAILED", target, exc.errno)
        raise SystemExit("crash the harness after planting the results")
    """,
    )
    results = attack(path, quick, run)
    # what it "wrote" landed in its private /tmp (the host paths it named do not exist in its
    # sandbox); on the host, the one results.json is the harness's own, sealed, failed record
    assert results["status"] == "failed" and verified(results) and "crash the harness" in results["reason"]
    for target in targets[1:]:
        assert not target.exists(), target


def test_the_variant_cannot_kill_its_parent_or_reach_the_terminal(quick, write_variant, tmp_path):
    path = write_variant(
        HONEST,
        f"""
    import fcntl, os, signal, termios

    def build(spec):
        for pid in ({os.getpid()}, os.getppid()):
            try:
                os.kill(pid, signal.SIGKILL)
                print("SIGNALLED", pid)
            except OSError as exc:
                print("KILL-FAILED", pid, exc.errno)
        try:
            os.open("/dev/tty", os.O_RDWR)
            print("GOT-A-TERMINAL")
        except OSError as exc:
            print("NO-TERMINAL", exc.errno)
        for fd in (0, 1, 2):
            try:
                fcntl.ioctl(fd, termios.TIOCSTI, b"x")
                print("INJECTED", fd)
            except OSError:
                print("TIOCSTI-FAILED", fd)
        return BatchTopKSAE(spec.d_in, spec.width, spec.k)
    """,
    )
    results = attack(path, quick, tmp_path / "run")
    log = worker_log(tmp_path / "run")
    assert results["status"] == "ok", results.get("reason")  # we are alive, and the run went on
    assert f"SIGNALLED {os.getpid()}" not in log
    assert "GOT-A-TERMINAL" not in log and "INJECTED" not in log and log.count("TIOCSTI-FAILED") == 3


def test_the_variant_sees_no_model_cache_baseline_secret_or_key(quick, write_variant, tmp_path):
    draw_all("red-team")
    verified({})  # nothing to check; makes sure the results key exists
    secrets = [
        cache_root(),
        cache_root() / "models",
        secrets_path("red-team"),
        key_path(),
        cache_root() / "baselines",
        cache_root() / "secrets" / "eval.json",
    ]
    key_path().parent.mkdir(parents=True, exist_ok=True)
    from autosae.harness.seal import seal

    seal({})  # creates the key
    assert all(p.exists() for p in secrets[:4])
    path = write_variant(
        HONEST,
        f"""
    import os

    def build(spec):
        for target in {[str(p) for p in secrets]!r} + [os.path.expanduser("~/.cache"), "/root", "/home"]:
            try:
                found = os.listdir(target) if os.path.isdir(target) else open(target, "rb").read(64)
                print("READ", target, found)
            except OSError as exc:
                print("HIDDEN", target, exc.errno)
        return BatchTopKSAE(spec.d_in, spec.width, spec.k)
    """,
    )
    results = attack(path, quick, tmp_path / "run")
    log = worker_log(tmp_path / "run")
    assert results["status"] == "ok", results.get("reason")
    # at most the way down to the interpreter (bound read-only so that python runs): nothing of ours
    python = {part for p in (sys.prefix, sys.base_prefix) for part in Path(os.path.realpath(p)).parts}
    leaked = [
        line
        for line in log.splitlines()
        if line.startswith("READ") and not set(ast.literal_eval(line.split(" ", 2)[2])) <= python
    ]
    assert not leaked, leaked


def test_the_variant_cannot_reach_the_network(quick, write_variant, tmp_path, listener):
    path = write_variant(
        HONEST,
        f"""
    import socket

    def build(spec):
        for host in ("127.0.0.1", "localhost"):
            try:
                socket.create_connection((host, {listener.port}), timeout=2).close()
                print("CONNECTED", host)
            except OSError as exc:
                print("NO-NETWORK", host, exc.errno)
        return BatchTopKSAE(spec.d_in, spec.width, spec.k)
    """,
    )
    results = attack(path, quick, tmp_path / "run")
    assert results["status"] == "ok", results.get("reason")
    assert "CONNECTED" not in worker_log(tmp_path / "run")
    assert listener.accepted == 0


@pytest.mark.parametrize("bomb", ["fork", "memory", "disk", "log"])
def test_a_variant_that_takes_without_bound_is_stopped_and_recorded(quick, write_variant, tmp_path, bomb):
    path = write_variant(
        HONEST,
        f"""
    import os

    def build(spec):
        if "{bomb}" == "fork":
            while True:
                try:
                    os.fork()
                except OSError:
                    pass
        if "{bomb}" == "memory":
            hog = []
            while True:
                hog.append(bytearray(b"x") * (64 << 20))  # touched, not just reserved
        if "{bomb}" == "log":
            while True:
                print("x" * (1 << 20))
        if "{bomb}" == "disk":
            n = 0
            while True:
                with open(f"filler-{{n}}", "wb") as f:
                    f.write(os.urandom(1 << 20) * 8)
                n += 1
    """,
    )
    limits = {
        "fork": {"max_processes": 64},
        "memory": {"memory_limit_gb": 1.5},
        "disk": {"disk_limit_gb": 0.05},
        "log": {"disk_limit_gb": 0.05},
    }[bomb]
    results = attack(path, quick, tmp_path / "run", time_limit_s=90, **limits)
    assert results["status"] == "failed", results
    expected = {"fork": "processes", "memory": "memory", "disk": "disk", "log": "file size"}[bomb]
    assert results["failure_kind"] in ("resource_limit", "out_of_memory") and expected in results["reason"], results
    assert "timeout" not in results["failure_kind"]
    assert (seed_dir(tmp_path / "run") / "worker.log").stat().st_size <= 0.05 * 2**30  # the log is bounded too
    left = [p for p in os.listdir("/proc") if p.isdigit() and _cmdline_has(p, str(path.parent))]
    assert not left  # nothing of the variant outlives its run


def _cmdline_has(pid: str, needle: str) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return needle.encode() in f.read()
    except OSError:
        return False


def test_a_pickle_is_never_what_crosses(quick, tmp_path):
    """The harness reads replies with json only: even a pickle that names our own classes is refused."""
    from autosae.sandboxed.protocol import ProtocolError, parse_reply

    with pytest.raises(ProtocolError):
        parse_reply(pickle.dumps({"tag": "ready"}))
    with pytest.raises(ProtocolError, match="width"):
        parse_reply(b'{"tag": "ready", "architecture": "x", "parameters": 1, "width": "128"}')
    with pytest.raises(ProtocolError, match="finite"):
        parse_reply(b'{"tag": "trained", "slot": 0, "logs": [{"loss": NaN}], "integrity": {}, "note": ""}')
