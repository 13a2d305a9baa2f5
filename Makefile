# crewcall: `make run` starts the bot (with Slack credentials) or the sandbox workspace (without),
# `make test` runs every check. Both create .venv when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test lint format postgres browser bench migration clean

install: $(STAMP)

# Reinstalled whenever pyproject.toml changes; the project itself runs from the checkout.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	@$(PY) -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
		print("\n".join(p["dependencies"] + p["optional-dependencies"]["dev"]))' > $(VENV)/requirements.txt
	@$(PY) -m pip install -q --disable-pip-version-check -r $(VENV)/requirements.txt
	@$(PY) -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["tool"]["crewcall"]["no-deps"]))' \
		> $(VENV)/requirements-nodeps.txt
	@$(PY) -m pip install -q --disable-pip-version-check --no-deps -r $(VENV)/requirements-nodeps.txt
	@touch $(STAMP)

# With SLACK_BOT_TOKEN in the environment or .env: the bot against Slack. Without: the sandbox, a
# local Slack in the browser with the real bot on ./data/sandbox.db (`make run RESET=1` starts over).
run: install
	@if [ -n "$$SLACK_BOT_TOKEN" ] || grep -qsE '^SLACK_BOT_TOKEN=.+' .env; then \
		$(PY) bot.py; \
	else \
		RESET=$(RESET) $(PY) -m sandbox; \
	fi

# PostgreSQL: the tests run every store test on it as well as on SQLite.
postgres:
	@pg_isready -q -h 127.0.0.1 -p 5432 || pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start
	@for i in 1 2 3 4 5 6 7 8 9 10; do pg_isready -q -h 127.0.0.1 -p 5432 && exit 0; sleep 1; done; \
		echo "PostgreSQL did not come up on 127.0.0.1:5432" >&2; exit 1

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Debian's chromium and chromium-driver for the sandbox's browser test (no browser download needed).
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then exit 0; fi; \
	if command -v apt-get >/dev/null; then \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium chromium-driver fonts-noto-color-emoji; \
	else echo "Install Chromium and its chromedriver at /usr/bin/chromium and /usr/bin/chromedriver" >&2; exit 1; fi

# Four workers on two cores: the suite waits on sockets and threads far more than it computes.
test: install postgres browser lint
	CREWCALL_BROWSER_REQUIRED=1 $(VENV)/bin/pytest -n 4

bench: install postgres
	$(PY) -m bench.claim_storm
	$(PY) -m bench.reminders
	$(PY) -m bench.broadcast
	$(PY) -m bench.policy
	$(PY) -m bench.policy_desk
	$(PY) -m bench.click_storm
	$(PY) -m bench.metrics_scrape
	$(PY) -m bench.throughput
	$(PY) -m bench.rss

# A new revision from the models' difference to the migrated schema of DATABASE_URL.
migration: install
	$(VENV)/bin/alembic revision --autogenerate -m "$(m)"

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
