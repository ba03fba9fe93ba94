"""Red team: replies forged from inside the variant's process, through the real harness in the
real sandbox. Whatever it sends, our process fails the seed with one line (never a traceback,
never a wait until the time limit), and what the variant reports about itself is recorded
bounded, cleaned and apart, under `reported_by_variant`, never as a figure of ours."""

from __future__ import annotations

import dataclasses
import json

import pytest

from autosae.harness.seal import verified
from autosae.records import reported_by_variant
from autosae.sprint.coverage import coverage_of
from autosae.sprint.verdict import Reference, compute_verdict, coverage_reason
from tests.security.conftest import HONEST, attack, seed_dir

pytestmark = pytest.mark.real_harness  # hostile variants in the real harness and sandbox

TAMPER = """
import sys

def tamper(edit):
    # the worker is this process's __main__: rewrite each reply on its way out, as a variant
    # that owns the process can (writing its own lines into the reply pipe comes to the same)
    protocol = sys.modules["__main__"].protocol
    encode = protocol.encode
    protocol.encode = lambda message: encode(edit(dict(message)))
"""

HARNESS_KEYS = {"step", "samples", "loss", "l0", "dead", "k"}


def forged(edit: str) -> tuple[str, str]:
    """A variant that builds the honest SAE and rewrites its replies with `edit(message)`."""
    return (
        HONEST,
        TAMPER,
        f"""
        def edit(message):
            tag = message["tag"]
            {edit}
            return message

        _build = build

        def build(spec):
            tamper(edit)
            return _build(spec)
        """,
    )


def one_line(results: dict) -> str:
    reason = results["reason"]
    assert "\n" not in reason and len(reason) < 600, reason
    return reason


FORGERIES = {
    # the harness's own field left out of a log entry (was: KeyError, and a sprint wedged on it)
    "no samples": 'if tag == "trained":\n                for e in message["logs"]: e.pop("samples")',
    # a 4000-digit integer (was: OverflowError in the reply reader, then a wait until the limit)
    "huge loss": 'if tag == "trained":\n                for e in message["logs"]: e["loss"] = 10 ** 3999',
    "huge parameters": 'if tag == "ready":\n                message["parameters"] = 10 ** 3999',
    "huge line": 'if tag == "state":\n                message["lines"] = [10 ** 3999]',
    # 12,800 eval values stuffed into the memory report (was: sealed into results.json)
    "memory flood": 'if tag == "state":\n                message["memory"] = {f"eval_{i}": 0.5 for i in range(12_800)}',
    # a log entry for a step that the rows we sent do not reach
    "step out of range": 'if tag == "trained":\n                for e in message["logs"]: e["step"] += 10 ** 6',
    # more dead latents than the SAE has
    "dead out of range": 'if tag == "trained":\n                for e in message["logs"]: e["dead"] = 10 ** 6',
}


SLOW = {"huge parameters", "huge line", "step out of range", "dead out of range"}
"""Forgeries the default suite leaves to make test-all: the protocol's unit test below refuses the
same numbers, and the run-level checks of step and dead are those of the others."""


@pytest.mark.parametrize("name", [pytest.param(n, marks=[pytest.mark.slow] if n in SLOW else []) for n in FORGERIES])
def test_a_forged_reply_fails_the_seed_with_one_line_not_our_process(quick, write_variant, tmp_path, name):
    path = write_variant(*forged(FORGERIES[name]))
    results = attack(path, quick, tmp_path / "run", time_limit_s=60)
    assert results["status"] == "failed" and results["failure_kind"] == "protocol", results.get("reason")
    assert "the variant's process sent" in one_line(results)
    assert results["wall_s"] < 40  # failed at once, not at the end of its time limit
    assert verified(results) and len((tmp_path / "run" / "results.json").read_bytes()) < 50_000


@pytest.mark.parametrize("value", ["nan", pytest.param("inf", marks=pytest.mark.slow)])
def test_a_decoder_row_of_nan_or_inf_fails_the_seed_before_scoring(quick, write_variant, tmp_path, value):
    path = write_variant(
        HONEST,
        f"""
    class Broken(BatchTopKSAE):
        def decoder_directions(self):  # parameters stay finite: only what it reports is broken
            d = super().decoder_directions().detach().clone()
            d[3] = float("{value}")
            return d

    def build(spec):
        return Broken(spec.d_in, spec.width, spec.k)
    """,
    )
    results = attack(path, quick, tmp_path / "run")
    assert results["status"] == "failed" and results["failure_kind"] == "nan", results.get("reason")
    assert "decoder" in one_line(results) and verified(results)


def test_a_flood_of_log_entries_in_one_reply_is_refused_and_writes_nothing_big(quick, write_variant, tmp_path):
    path = write_variant(
        *forged(
            'if tag == "trained":\n'
            "                import json\n"
            "                entry = json.dumps(message['logs'][0], separators=(',', ':'))\n"
            "                message['logs'] = message['logs'][:1] * (4_000_000 // (len(entry) + 1))  # just under 4 MB"
        )
    )
    results = attack(path, quick, tmp_path / "run")
    assert results["status"] == "failed" and results["failure_kind"] == "protocol", results.get("reason")
    one_line(results)
    assert (seed_dir(tmp_path / "run") / "train_log.jsonl").stat().st_size < 10_000


def test_the_training_log_is_bounded_per_seed_and_says_what_it_dropped(quick, write_variant, tmp_path):
    """Every step logged, each with 32 long-named metrics: replies the protocol accepts, but more
    than an honest run at the harness's LOG_EVERY writes."""
    path = write_variant(
        HONEST,
        """
    import sys

    class Chatty(BatchTopKSAE):
        def training_loss(self, x, step):
            out = super().training_loss(x, step)
            out.metrics.update({f"{i:02d}" + "m" * 62: out.loss.detach() for i in range(32)})
            return out

    def build(spec):
        trainer = sys.modules["__main__"].Trainer
        init = trainer.__init__

        def every_step(self, *args, **kwargs):
            init(self, *args, **kwargs)
            self.log_every = 1

        trainer.__init__ = every_step
        return Chatty(spec.d_in, spec.width, spec.k)
    """,
    )
    profile = dataclasses.replace(quick, constraints=dataclasses.replace(quick.constraints, training_samples=102_400))
    results = attack(path, profile, tmp_path / "run")
    assert results["status"] == "ok", results.get("reason")
    log = seed_dir(tmp_path / "run") / "train_log.jsonl"
    kept = len(log.read_text().splitlines())
    assert kept <= 20 and log.stat().st_size < 100_000  # honest: steps 1, 50 and 100
    assert results["per_seed"][0]["train_log_dropped"] == 100 - kept


def test_what_the_variant_says_of_itself_is_kept_apart_cleaned_and_never_ours(quick, write_variant, tmp_path):
    """One run, four forgeries that leave the SAE honest (so the seed scores): an architecture
    named with Markdown and a Slack mention, log entries with keys like the harness's own and a
    count of samples of its own, an export cfg the harness cannot parse, and a claim that lines
    0-9999 of its short file ran. The record keeps what we measured; what the variant said sits
    apart, cleaned and bounded; the export is refused, not a crash; and the no-op check still
    fires against an honest parent, from the probe fingerprint that the harness computes."""
    parent_path = write_variant(HONEST, name="parent.py")
    parent = attack(parent_path, quick, tmp_path / "parent")
    assert parent["status"] == "ok", parent.get("reason")
    name = "Exfil | <!channel>\\n| improved | 0.9999 |"
    path = write_variant(
        HONEST,
        TAMPER,
        f"""
    Exfil = type("{name}", (BatchTopKSAE,), {{}})

    def edit(message):
        if message["tag"] == "trained":
            for e in message["logs"]:
                e.update({{"samples": 10 ** 9, "f1": 0.99, "mcc": 0.99, "harness/loss": 0.0,
                          "variant/mine": 1.5, "variant/<!channel>\\n| x": 2.0}})
        if message["tag"] == "state":
            message["lines"] = list(range(10_000))
            if message["export"]:
                message["export"]["architecture"] = ["x"]
        return message

    def build(spec):
        tamper(edit)
        return Exfil(spec.d_in, spec.width, spec.k)

    def never(spec):
        if spec.width < 0:  # never true: a change that does nothing
            return None
    """,
    )
    source = path.read_text()
    results = attack(path, quick, tmp_path / "run")
    assert results["status"] == "ok", results.get("reason")

    # its name, parameters and memory: apart, cleaned, bounded; nothing of it raw in the record
    row = results["per_seed"][0]
    assert "architecture" not in row and "parameters" not in row and "worker_memory" not in row
    reported = row["reported_by_variant"]
    assert reported["architecture"].startswith("Exfil") and reported["parameters"] > 0
    assert all(c.isalnum() or c in "_." for c in reported["architecture"]) and len(reported["architecture"]) <= 100
    assert set(reported["memory"]) <= {"peak_rss_mb", "peak_gpu_mb"}
    text = (tmp_path / "run" / "results.json").read_text()
    assert "<!channel>" not in text and "| improved" not in text

    # the training log: our keys, our count of the rows, its own metrics under variant/ with clean names
    entries = [json.loads(line) for line in (seed_dir(tmp_path / "run") / "train_log.jsonl").read_text().splitlines()]
    assert entries
    for e in entries:
        own = {k for k in e if not k.startswith("variant/")}
        assert own <= HARNESS_KEYS and {"step", "samples", "loss", "l0", "dead"} <= own, e
        assert e["samples"] == e["step"] * quick.constraints.batch_size  # our count of the rows, not its word
        assert e["variant/mine"] == 1.5
        assert all(k.isprintable() and "<" not in k and "|" not in k for k in e), e

    # an export cfg the harness cannot parse (an unhashable architecture): refused, not a TypeError
    refused = json.loads((seed_dir(tmp_path / "run") / "sae" / "NOT_SAELENS.json").read_text())
    assert "refused" in refused["reason"]

    # lines it never had: only the file's own lines are kept, the claim marks the coverage as forged,
    # and the no-op check still fires from the harness's own fingerprint
    reported = reported_by_variant(row)
    lines = len(source.splitlines())
    assert reported["executed_lines"] == list(range(lines + 1))
    assert reported["executed_lines_outside_file"] == 10_000 - (lines + 1)
    coverage = coverage_of(parent_path.read_text(), source, results)
    assert coverage["forged"] and "forged" in coverage_reason(coverage)
    verdict = compute_verdict(results, "s", Reference.from_results("parent", parent), None, {}, "f1", 0.05, coverage)
    assert verdict["noop"] and verdict["verdict"] == "no change"
    assert "probe batch" in verdict["noop_reason"]  # the fingerprint is ours: it holds whatever the lines say


def test_the_protocol_bounds_keys_entries_and_integers():
    from autosae.sandboxed.protocol import MAX_INT, MAX_KEYS, MAX_LOGS, ProtocolError, parse_reply

    def trained(logs) -> bytes:
        return json.dumps({"tag": "trained", "slot": 0, "logs": logs, "integrity": {}, "note": ""}).encode()

    entry = {"step": 1, "samples": 1024, "loss": 1.0, "l0": 5.0, "dead": 0}
    assert parse_reply(trained([entry]))["logs"] == [entry]
    for logs, why in [
        ([{k: v for k, v in entry.items() if k != "samples"}], "without 'samples'"),
        ([entry | {"loss": MAX_INT + 1}], "out of range"),
        ([entry | {f"variant/{i}": 1.0 for i in range(MAX_KEYS)}], "keys"),
        ([entry] * (MAX_LOGS + 1), "items"),
    ]:
        with pytest.raises(ProtocolError, match=why):
            parse_reply(trained(logs))
    ready = {"tag": "ready", "architecture": "x", "parameters": MAX_INT + 1, "width": 128}
    state = {"tag": "state", "export": None, "not_exported": "", "memory": {}, "integrity": {}, "note": ""}
    for reply in (ready, state | {"lines": [MAX_INT + 1]}):
        with pytest.raises(ProtocolError, match="out of range"):
            parse_reply(json.dumps(reply).encode())
    with pytest.raises(ProtocolError, match="not JSON"):
        parse_reply(b'{"tag": "ready", "architecture": "x", "parameters": ' + b"9" * 5000 + b', "width": 128}')


def test_a_named_pipe_for_a_state_file_fails_the_seed_at_once(quick, write_variant, tmp_path):
    """The variant puts a named pipe where our process reads its state back: opened without
    blocking and refused as not a regular file, the seed fails with one line at once (it once
    blocked our process past every time limit)."""
    path = write_variant(
        *forged(
            'if tag == "state":\n'
            "                import os\n"
            "                os.remove('variant_state.safetensors')\n"
            "                os.mkfifo('variant_state.safetensors')"
        )
    )
    results = attack(path, quick, tmp_path / "run", time_limit_s=60)
    assert results["status"] == "failed" and results["failure_kind"] == "export", results.get("reason")
    assert "not a regular file" in one_line(results) and results["wall_s"] < 40
