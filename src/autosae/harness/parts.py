"""A sprint's parts: the implementer declares its change as separable parts in
sprints/<id>/parts.json, each removed either by knobs passed to build() (VariantSpec.options)
or by a variant file of its own in the sprint folder:

    [{"name": "lista", "what": "one LISTA step", "off": {"use_lista": false}},
     {"name": "freq_sort", "what": "frequency sort", "off_file": "ablate_freq_sort.py"}]

Read here, bounded and without following links, by the implement phase's `finish` check (a
wrong declaration is refused while the agent can still fix it) and by the ablating phase
(autosae.sprint.ablation), which trains each part removed.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

from autosae.bounded import read_prefix
from autosae.errors import AutosaeError
from autosae.harness.arms import check_options
from autosae.report.escape import one_line

PARTS_FILE = "parts.json"
MAX_PARTS = 8
PARTS_BYTES = 64 << 10
NAME = re.compile(r"^[a-z0-9_]{1,32}$")
WHAT_CHARS = 200


def read_parts(folder: Path) -> tuple[list[dict], str]:
    """The declared parts [{name, what, off} | {name, what, off_file}] and "" , or ([], why
    parts.json cannot be used: one line); no parts.json is ([], "")."""
    path = folder / PARTS_FILE
    try:  # one open, no link followed, never blocking on a pipe, bounded: what is checked is what is read
        found = read_prefix(path, PARTS_BYTES + 1)
    except FileNotFoundError:
        return [], ""
    except OSError:
        return [], f"{PARTS_FILE} is not a regular file"
    if found.size > PARTS_BYTES or found.cut:
        return [], f"{PARTS_FILE} has more than {PARTS_BYTES:,} bytes"
    try:
        raw = json.loads(found.data.decode())
    except (OSError, ValueError, RecursionError) as exc:
        return [], f"{PARTS_FILE} is not valid JSON ({one_line(str(exc), 120)})"
    if not isinstance(raw, list) or not raw:
        return [], f"{PARTS_FILE}: expected a non-empty list of parts"
    if len(raw) > MAX_PARTS:
        return [], f"{PARTS_FILE}: {len(raw)} parts; at most {MAX_PARTS}"
    parts, names = [], set()
    for i, item in enumerate(raw, 1):
        where = f"{PARTS_FILE} part {i}"
        if not isinstance(item, dict):
            return [], f"{where}: expected an object {{name, what, off | off_file}}"
        unknown = sorted(set(map(str, item)) - {"name", "what", "off", "off_file"})
        if unknown:
            return [], f"{where}: unknown key {one_line(unknown[0], 40)!r} (name, what, off, off_file)"
        name = item.get("name")
        if not isinstance(name, str) or not NAME.match(name):
            return [], f"{where}: name: 1 to 32 of a-z, 0-9 and _"
        if name in names:
            return [], f"{where}: name {name!r} twice"
        names.add(name)
        what = item.get("what", "")
        if not isinstance(what, str):
            return [], f"{where}: what: expected a string"
        part = {"name": name, "what": one_line(what, WHAT_CHARS)}
        if ("off" in item) == ("off_file" in item):
            return [], f"{where}: give exactly one of off (knobs for build()) or off_file (a variant file)"
        if "off" in item:
            try:
                off = check_options(item["off"], where)
            except AutosaeError as exc:
                return [], str(exc).replace(".options", ".off")
            if not off:
                return [], f"{where}: off: at least one knob"
            part["off"] = off
        else:
            problem = _off_file_problem(folder, item["off_file"])
            if problem:
                return [], f"{where}: off_file: {problem}"
            part["off_file"] = item["off_file"]
        parts.append(part)
    return parts, ""


def _off_file_problem(folder: Path, rel: object) -> str:
    if not isinstance(rel, str) or not re.match(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}\.py$", rel) or rel == "variant.py":
        return "the name of a .py file in the sprint folder (not variant.py)"
    try:
        info = os.lstat(folder / rel)
    except FileNotFoundError:
        return f"{one_line(rel, 64)} is not in the sprint folder"
    if not stat.S_ISREG(info.st_mode):
        return f"{one_line(rel, 64)} is not a regular file"
    return ""
