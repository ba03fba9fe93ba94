"""The lineage tree of the morning digest: baselines as roots, each sprint drawn after the
parent it was built on, its score beside it and its colour its verdict.

`lineage_layout` places the nodes (pure: no matplotlib, so it is cheap and testable);
`lineage_figure` draws them. Only the night's sprints and their ancestors are drawn, so the
tree stays readable after weeks of sprints; the ancestors from before the night are faded.
"""

from __future__ import annotations

from autosae.report.escape import pdf_line

DEFAULT_PARENT = "baseline:matryoshka"
"""The parent of a sprint that records none (the first sprints' parent, as ideation picks it)."""
VERDICT_COLORS = {
    "improved": "#1a7f37",
    "worse": "#cf222e",
    "no change": "#8c959f",
    "inconclusive": "#d4a72c",
    "failed": "#24292f",
}
OTHER_COLOR = "#57606a"
BEST_COLOR = "#8250df"
TITLE_CHARS = 30


def parent_key(row: dict) -> str:
    return str(row.get("parent") or DEFAULT_PARENT)


def lineage_layout(rows: list[dict], night_ids: set[str] | None = None) -> dict:
    """Nodes and edges of the tree of `rows` (the ledger, in order) drawn for `night_ids`
    (None: every sprint) and their ancestors.

    Returns {"nodes": {key: node}, "edges": [(parent key, child key)], "depth": deepest,
    "slots": rows of the layout}. A node is {"key", "kind" ("baseline", "sprint" or "missing":
    a parent the ledger does not hold), "row" (the ledger row, sprints only), "number" (its
    place in the ledger, from 1), "parent" (None for a root), "night" (drawn at full colour),
    "x" (its depth: a root is 0), "y" (its slot; children below their parent, in order)}."""
    by_id = {r["id"]: (n, r) for n, r in enumerate(rows, 1) if r.get("id")}
    wanted = [r["id"] for r in rows if r.get("id") and (night_ids is None or r["id"] in night_ids)]
    nodes: dict[str, dict] = {}
    for sid in wanted:  # each night sprint, then its ancestors up to a root
        key, seen, last = sid, set(), None
        while key not in nodes:
            seen.add(key)
            if key in by_id:
                n, row = by_id[key]
                nodes[key] = {"key": key, "kind": "sprint", "row": row, "number": n, "parent": parent_key(row)}
                last, key = key, parent_key(row)
            else:
                kind = "baseline" if key.startswith("baseline:") else "missing"
                nodes[key] = {"key": key, "kind": kind, "row": None, "number": None, "parent": None}
                break
        if key in seen and nodes[key]["kind"] == "sprint" and last is not None:
            nodes[last]["parent"] = None  # a forged ledger whose parents form a cycle: cut it, never loop
    night = set(wanted)
    for node in nodes.values():
        node["night"] = node["key"] in night or node["kind"] != "sprint"
    children: dict[str | None, list[str]] = {}
    order = {k: i for i, k in enumerate(r["id"] for r in rows if r.get("id"))}
    for key, node in sorted(nodes.items(), key=lambda kv: order.get(kv[0], -1)):
        children.setdefault(node["parent"], []).append(key)
    roots = sorted(children.get(None, []), key=_root_order(nodes, children, order))
    slot, depth = 0, 0
    for root in roots:  # an iterative post-order walk: leaves take the next slot, parents sit by their first child
        stack = [(root, 0, False)]
        while stack:
            key, d, done = stack.pop()
            node = nodes[key]
            kids = children.get(key, [])
            if done or not kids:
                node["x"], depth = d, max(depth, d)
                if kids:
                    node["y"] = nodes[kids[0]]["y"]
                else:
                    node["y"], slot = slot, slot + 1
                continue
            stack.append((key, d, True))
            stack.extend((k, d + 1, False) for k in reversed(kids))
        slot += 0.5  # a little room between the trees of two roots
    edges = [(n["parent"], k) for k, n in nodes.items() if n["parent"] is not None]
    return {"nodes": nodes, "edges": edges, "depth": depth, "slots": max(slot - 0.5, 0)}


def _root_order(nodes: dict, children: dict, order: dict):
    """Roots in the order their first descendant was recorded (so the oldest line of work is on top)."""

    def first(root: str) -> int:
        stack, best = [root], len(order)
        while stack:
            key = stack.pop()
            best = min(best, order.get(key, best))
            stack.extend(children.get(key, []))
        return best

    return first


def node_label(node: dict, objective: str, baselines: dict | None = None) -> str:
    if node["kind"] == "baseline":
        stats = (baselines or {}).get(node["key"].removeprefix("baseline:")) or {}
        mean = (stats.get(objective) or {}).get("mean")
        return node["key"] + (f"\n{objective.upper()} {mean:.4f}" if isinstance(mean, (int, float)) else "")
    if node["kind"] == "missing":
        return f"? {pdf_line(node['key'], TITLE_CHARS)} (not in the ledger)"
    row = node["row"]
    mean = (row.get(objective) or {}).get("mean")
    score = f"{objective.upper()} {mean:.4f}" if isinstance(mean, (int, float)) else "no score"
    marks = " ★" if row.get("new_best") else ""
    outcome = row.get("held_out_outcome")
    if outcome == "confirmed" or (row.get("confirmed") and not outcome):
        marks += " held-out ✓"
    elif outcome in ("contradicted", "not confirmed") or (row.get("confirmed") is False and not outcome):
        marks += " held-out ✗"
    return f"#{node['number']} {pdf_line(row.get('title') or row['id'], TITLE_CHARS)}\n{score}{marks}"


def lineage_figure(
    plt, layout: dict, objective: str = "f1", best_id: str | None = None, title: str = "", baselines: dict | None = None
):
    """The tree as a figure: x is the depth (parent → child left to right), each node a dot in
    its verdict's colour with its number, title and score beside it; the best so far ringed."""
    from matplotlib.lines import Line2D

    nodes, depth = layout["nodes"], layout["depth"]
    width = min(60.0, max(8.0, 2.4 + 2.6 * (depth + 1)))
    height = min(60.0, max(3.5, 1.6 + 0.55 * (layout["slots"] + 1)))
    fig = plt.figure(figsize=(width, height))
    bottom, top = 0.7 / height, 0.45 / height  # inches: two rows of legend below, the title above
    ax = fig.add_axes([0.01, bottom, 0.98, 1 - bottom - top])
    ax.axis("off")
    for parent, child in layout["edges"]:
        p, c = nodes[parent], nodes[child]
        elbow = c["x"] - 0.25
        ax.plot(
            [p["x"], elbow, elbow, c["x"]],
            [p["y"], p["y"], c["y"], c["y"]],
            color="#afb8c1",
            linewidth=1.2,
            alpha=1.0 if c["night"] else 0.5,
            zorder=1,
        )
    for node in nodes.values():
        row = node["row"] or {}
        alpha = 1.0 if node["night"] else 0.45
        if node["kind"] == "sprint":
            color = VERDICT_COLORS.get(row.get("verdict"), OTHER_COLOR)
            marker = "X" if row.get("verdict") == "failed" else "o"
            ax.scatter([node["x"]], [node["y"]], s=90, marker=marker, color=color, alpha=alpha, zorder=3)
        else:
            ax.scatter(
                [node["x"]],
                [node["y"]],
                s=110,
                marker="s",
                facecolor="white",
                edgecolor="black",
                linestyle="--" if node["kind"] == "missing" else "-",
                zorder=3,
            )
        if node["key"] == best_id:
            ax.scatter([node["x"]], [node["y"]], s=330, facecolor="none", edgecolor=BEST_COLOR, linewidth=2.5, zorder=4)
        ax.annotate(
            node_label(node, objective, baselines),
            (node["x"], node["y"]),
            xytext=(9, 2),
            textcoords="offset points",
            fontsize=8,
            va="bottom",
            ha="left",
            alpha=max(alpha, 0.7),
            weight="bold" if node["key"] == best_id else "normal",
        )
    ax.set_xlim(-0.2, depth + 1.1)
    ax.set_ylim(layout["slots"] + 0.2, -0.8)  # the first slot on top
    handles = [
        Line2D([], [], marker="o", linestyle="", color=c, label=v) for v, c in VERDICT_COLORS.items() if v != "failed"
    ]
    handles += [
        Line2D([], [], marker="X", linestyle="", color=VERDICT_COLORS["failed"], label="failed"),
        Line2D([], [], marker="s", linestyle="", markerfacecolor="white", markeredgecolor="black", label="baseline"),
        Line2D(
            [],
            [],
            marker="o",
            linestyle="",
            markersize=12,
            markerfacecolor="none",
            markeredgecolor=BEST_COLOR,
            markeredgewidth=2,
            label="best so far",
        ),
        Line2D([], [], linestyle="", label="★ new best · held-out ✓/✗ · faded: before the night"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=5, fontsize=8, frameon=False)
    if title:
        fig.text(0.01, 1 - 0.1 / height, title, fontsize=12, weight="bold", va="top")
    return fig
