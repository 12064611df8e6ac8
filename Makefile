# The two commands of the README. Both create (or reuse) the virtual environment in .venv/.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo test test-fast clean-venv

# Reinstalls only when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@# kwsnb once pinned tensorflow-cpu; beside the tensorflow it asks for now, the two wheels
	@# would overwrite each other's files.
	@$(PY) -m pip uninstall --quiet --yes tensorflow-cpu 2>/dev/null || true
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $@

## Main job: offline TTS data set -> train -> quantize -> evaluate -> stream, in runs/demo/
demo: $(VENV)/.installed
	$(PY) -m kwsnb.demo $(ARGS)

# One pytest-xdist worker per core, each test file on one worker (its module fixtures, such as a
# trained model, are made once), files in the order tests/conftest.py puts them (the longest
# first); PYTEST_WORKERS=0 runs everything in this process.
PYTEST_WORKERS ?= auto
PYTEST_PARALLEL := -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder

## Every test, including notebook runs and real-data checks (skipped when ../shared/data is absent)
test: $(VENV)/.installed
	$(PY) -m pytest $(PYTEST_PARALLEL) $(ARGS)

## Only the fast tests
test-fast: $(VENV)/.installed
	$(PY) -m pytest $(PYTEST_PARALLEL) -m "not slow" $(ARGS)

clean-venv:
	rm -rf $(VENV)
