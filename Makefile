# The README's two commands. Each one sets up .venv/ first (idempotent: about a
# second when nothing changed, minutes on a fresh machine).
PY := .venv/bin/python
# Test workers: the CI machine has 2 cores.
WORKERS ?= 2

.PHONY: setup demo test

setup:
	bash tools/setup_env.sh

demo: setup
	PYTHONUNBUFFERED=1 $(PY) tools/demo.py --work-dir work_dirs/demo

test: setup
	PYTHONUNBUFFERED=1 $(PY) -m pytest -n $(WORKERS) --durations=15 tests
