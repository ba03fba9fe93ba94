"""The digest's lineage layout and its content, on ledger rows (pure functions: no sprint runs)."""

from __future__ import annotations

from datetime import datetime, timezone

from autosae.report.digest import ablation_table, night_rows, night_start
from autosae.report.lineage import lineage_layout


def row(sid: str, parent: str | None, finished: str = "2026-01-02T03:00:00Z", **more) -> dict:
    return {"id": sid, "title": sid, "parent": parent, "verdict": "improved", "finished": finished, **more}


def test_every_node_is_placed_with_edges_from_parent_to_child_and_baselines_as_roots():
    rows = [
        row("a", "baseline:matryoshka"),
        row("b", "a"),
        row("c", "a"),
        row("d", "baseline:batchtopk"),
        row("e", None),  # no parent recorded: the default, Matryoshka
        row("f", "gone-sprint"),  # a parent the ledger does not hold
        row("g", "c"),
    ]
    layout = lineage_layout(rows)
    nodes = layout["nodes"]
    assert set(nodes) == {"a", "b", "c", "d", "e", "f", "g", "baseline:matryoshka", "baseline:batchtopk", "gone-sprint"}
    assert sorted(layout["edges"]) == sorted(
        [
            ("baseline:matryoshka", "a"),
            ("a", "b"),
            ("a", "c"),
            ("c", "g"),
            ("baseline:batchtopk", "d"),
            ("baseline:matryoshka", "e"),
            ("gone-sprint", "f"),
        ]
    )
    roots = {k for k, n in nodes.items() if n["parent"] is None}
    assert roots == {"baseline:matryoshka", "baseline:batchtopk", "gone-sprint"}
    assert nodes["gone-sprint"]["kind"] == "missing" and nodes["baseline:batchtopk"]["kind"] == "baseline"
    for parent, child in layout["edges"]:
        assert nodes[child]["x"] == nodes[parent]["x"] + 1  # x is the depth
    assert layout["depth"] == 3 and nodes["g"]["x"] == 3
    places = [(n["x"], n["y"]) for n in nodes.values()]
    assert len(set(places)) == len(places)  # no two nodes on one spot
    assert nodes["a"]["y"] == nodes["b"]["y"] < nodes["c"]["y"]  # a parent beside its first child, siblings in order
    assert [nodes[k]["number"] for k in "abcdefg"] == [1, 2, 3, 4, 5, 6, 7]


def test_only_the_night_and_its_ancestors_are_drawn_and_a_cycle_is_cut():
    rows = [row("old", "baseline:matryoshka"), row("side", "old"), row("new", "old"), row("x", "y"), row("y", "x")]
    layout = lineage_layout(rows, {"new", "x"})
    nodes = layout["nodes"]
    assert set(nodes) == {
        "baseline:matryoshka",
        "old",
        "new",
        "x",
        "y",
    }  # "side" is neither the night's nor an ancestor
    assert nodes["new"]["night"] and not nodes["old"]["night"]
    assert [k for k in ("x", "y") if nodes[k]["parent"] is None] == ["y"]  # the forged cycle, cut once
    assert ("y", "x") in layout["edges"] and ("x", "y") not in layout["edges"]
    assert lineage_layout([], set()) == {"nodes": {}, "edges": [], "depth": 0, "slots": 0}


def test_the_night_is_anchored_on_the_latest_sprint_or_on_since():
    rows = [
        row("a", None, "2026-01-01T01:00:00Z"),
        row("b", None, "2026-01-02T01:00:00Z"),
        row("c", None, "2026-01-02T20:00:00Z"),
        row("d", None, finished=None),  # no time recorded: counted in the night
    ]
    assert [r["id"] for r in night_rows(rows, night_start(rows))] == ["b", "c", "d"]
    since = datetime(2026, 1, 2, 12, tzinfo=timezone.utc)
    assert [r["id"] for r in night_rows(rows, night_start(rows, since))] == ["c", "d"]
    assert night_start([row("e", None, finished=None)]) is None


def test_an_ablation_table_is_shown_whatever_its_shape():
    table = ablation_table([{"arm": "full", "f1": {"mean": 0.8, "std": 0.01}}, {"arm": "- detach", "f1": 0.7}])
    assert table["columns"] == ["arm", "f1"] and table["rows"] == [["full", "0.8000 ± 0.0100"], ["- detach", "0.7"]]
    assert ablation_table({"rows": [{"a": None}]})["rows"] == [["—"]]
    assert ablation_table(None) is None and ablation_table("text") == {"unreadable": True}


def test_the_ablating_phases_table_is_shown_as_the_report_shows_it():
    record = {
        "objective": "f1",
        "seeds": [0, 1, 2],
        "samples": 600_000,
        "rows": [
            {
                "part": "k_hold",
                "what": "K held",
                "delta": 0.04012,
                "p": 0.02659,
                "class": "load-bearing",
                "n": 3,
                "f1": {"mean": 0.7681, "std": 0.0135, "n": 3},
                "mcc": {"mean": 0.7018, "std": 0.0078, "n": 3},
            },
        ],
    }
    table = ablation_table(record)
    assert table["columns"][:5] == ["part", "what", "Δ F1 (full − ablated)", "p", "class"]
    assert table["rows"] == [
        ["k_hold", "K held", "+0.0401", "0.027", "load-bearing", "0.7681 ± 0.0135", "0.7018 ± 0.0078"]
    ]
    assert table["note"] == "3 seeds, 600,000 training samples per run"


def test_the_digest_says_why_the_last_loop_ended_when_it_ended_tonight(tmp_path):
    from autosae.report.digest import loop_end
    from autosae.sprint.loop import record_end
    from autosae.sprint.project import Project

    night = [row("a", None, finished="2026-01-02T03:00:00Z")]
    assert loop_end(tmp_path, night, None) is None  # no loop recorded its end
    record_end(Project(tmp_path), 4, "--max-sprints 4 reached")
    said = loop_end(tmp_path, night, None)
    assert said.startswith("--max-sprints 4 reached (at ")
    earlier = [row("a", None, finished="2999-01-01T00:00:00Z")]  # a sprint after the loop's end: another loop's
    assert loop_end(tmp_path, earlier, None) is None
