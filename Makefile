# The two commands of the README. Everything else is set up by them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint translations

$(BIN)/quanyi: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

## Start the back office on the embedded defaults (SQLite, in-process jobs) with the demo tenant.
run: $(BIN)/quanyi
	$(BIN)/quanyi db upgrade
	$(BIN)/quanyi demo
	@echo "Open http://127.0.0.1:5000/login and sign in with one of the logins above."
	$(BIN)/quanyi run --host 127.0.0.1 --port 5000

## Run the whole test suite (SQLite and in-process jobs; PostgreSQL/Redis when TEST_* URLs are set).
test: $(BIN)/quanyi
	$(BIN)/pytest -n 2

lint: $(BIN)/quanyi
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## Refresh the message catalogue after adding strings, then fill in saas/translations/zh/.../messages.po.
translations: $(BIN)/quanyi
	$(BIN)/pybabel extract -F babel.cfg -k _l -k lazy_gettext -k lazy_pgettext:1c,2 -o saas/translations/messages.pot .
	$(BIN)/pybabel update -i saas/translations/messages.pot -d saas/translations -l zh --no-fuzzy-matching
	$(BIN)/pybabel compile -d saas/translations -l zh
