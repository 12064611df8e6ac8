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

## Every test, including notebook runs and real-data checks (skipped when ../shared/data is absent)
test: $(VENV)/.installed
	$(PY) -m pytest $(ARGS)

## Only the fast tests
test-fast: $(VENV)/.installed
	$(PY) -m pytest -m "not slow" $(ARGS)

clean-venv:
	rm -rf $(VENV)
