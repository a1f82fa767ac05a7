# Two commands do all the set-up on a fresh Debian machine: `make run`, `make test`.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: run test lint venv clean chaos

$(STAMP): pyproject.toml
	@$(PYTHON) -m venv --help > /dev/null 2>&1 && $(PYTHON) -c "import ensurepip" 2>/dev/null \
		|| bash scripts/install-debian-packages.sh python3-venv
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

run: venv
	bash scripts/run-demo.sh

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: venv
	bash scripts/install-test-packages.sh
	$(MAKE) lint
	$(VENV)/bin/pytest -q

# The crash campaign (README "Proving the guarantees"); options via ARGS="...".
chaos: venv
	$(VENV)/bin/python -m tests.chaos.campaign $(ARGS)

clean:
	rm -rf $(VENV) var
