# `make demo` runs the main job; `make test` runs the tests. Both install into .venv first.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.autosae-installed

.PHONY: install poppler lint demo test test-all bench clean

install: $(STAMP)

# The Claude Code CLI, for the claude_code backend and its tests (skipped where npm is missing).
CLAUDE_CODE := $(VENV)/claude-code/node_modules/.bin/claude
$(CLAUDE_CODE):
	if command -v npm >/dev/null; then npm install -q --no-audit --no-fund --prefix $(VENV)/claude-code @anthropic-ai/claude-code@2 \
	  && (cd $(VENV)/claude-code/node_modules/@anthropic-ai/claude-code && node install.cjs) \
	  || echo "could not install Claude Code: the claude_code backend's tests will be skipped"; \
	else echo "npm not found: the claude_code backend's tests will be skipped"; fi

# Poppler's pdftotext, pdfinfo and pdftoppm: the report tests read the PDFs back with them, as a
# reader's tools would. Installed with apt-get where we are root; elsewhere the tests use pypdfium2.
poppler:
	@command -v pdftotext >/dev/null || { if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get install -y -q poppler-utils >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q poppler-utils >/dev/null 2>&1; } \
	  || echo "could not install poppler-utils: the report tests read PDFs with pypdfium2"; \
	else echo "pdftotext not found: the report tests read PDFs with pypdfium2 (apt-get install poppler-utils to use poppler)"; fi; }

# Without an NVIDIA GPU, install the CPU torch wheel first so pip never pulls a CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	if ! nvidia-smi -L >/dev/null 2>&1; then $(PY) -m pip install -q torch==2.13.0; fi
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

# The main job on the embedded default: a research project under runs/demo, three sprints of
# the offline recipe agent on the tiny CPU benchmark. Run it again for three more.
DEMO ?= runs/demo
demo: install
	test -f $(DEMO)/TASK.md || $(VENV)/bin/autosae init $(DEMO) --profile tiny --backend recipe
	$(VENV)/bin/autosae loop --project $(DEMO) --max-sprints 3
	$(VENV)/bin/autosae leaderboard --project $(DEMO)

# Three workers, a test file each at a time (a file's module fixtures run once): the engine,
# loop, CLI and report tests replay recorded harness runs (tests/replay), and the commands the
# tests run fork from one warm interpreter (tests/warm_cli.py); a third worker keeps two cores
# busy while another waits on a process (measured here: -n 4 was no faster); tests/conftest.py
# keeps torch to one thread per process, so that three workers do not spin against each other on
# two cores, and hands out the longest files first (LONGEST_FIRST; --no-loadscope-reorder keeps
# xdist from sorting them its own way), so that no long file finishes alone at the end.
# ruff's lint and its formatter's check (the style is the formatter's; see pyproject.toml).
lint: install
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

# PYTHONDONTWRITEBYTECODE emptied: where it is set (as on this machine), every process compiles
# our modules and pytest rewrites every test file again, in each of the ~200 processes.
test: install poppler $(CLAUDE_CODE) lint
	PYTHONDONTWRITEBYTECODE= $(PY) -m pytest -q -n 3 --dist loadfile --no-loadscope-reorder

test-all: install poppler $(CLAUDE_CODE)
	PYTHONDONTWRITEBYTECODE= $(PY) -m pytest -q -m '' -n 3 --dist loadfile --no-loadscope-reorder

bench: install
	$(PY) benchmarks/train_throughput.py --profile tiny
	$(PY) benchmarks/loop_overhead.py

clean:
	rm -rf $(VENV) runs .pytest_cache
