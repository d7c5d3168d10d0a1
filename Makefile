# The README's two commands (and the linter CI runs first). Each one sets up
# .venv/ first (idempotent: about a second when nothing changed, minutes on a
# fresh machine).
PY := .venv/bin/python
# Test workers: the CI machine has 2 cores.
WORKERS ?= 2

.PHONY: setup demo test lint

setup:
	bash tools/setup_env.sh

demo: setup
	PYTHONUNBUFFERED=1 $(PY) tools/demo.py --work-dir work_dirs/demo

test: setup
	PYTHONUNBUFFERED=1 $(PY) -m pytest -n $(WORKERS) --durations=15 tests

# flake8 with the line length setup.cfg declares; clean on the tree.
lint: setup
	$(PY) -m flake8 mmorepa tools tests configs
