# Two commands do all the set-up on a fresh Debian machine: `make run`, `make test`.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: run test lint venv clean badinput chaos

$(STAMP): pyproject.toml
	@$(PYTHON) -m venv --help > /dev/null 2>&1 && $(PYTHON) -c "import ensurepip" 2>/dev/null \
		|| { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv; }
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
	bash scripts/unit-exposure.sh

# What becomes of every input of the bad-input corpus, counted by reason.
badinput: venv
	$(VENV)/bin/python -m tests.badinput.report

# The crash campaign (README "Proving the guarantees"); options via ARGS="...".
chaos: venv
	$(VENV)/bin/python -m tests.chaos.campaign $(ARGS)

clean:
	rm -rf $(VENV) var
