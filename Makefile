# The two commands: `make demo` (the whole job on embedded defaults, then the API) and `make test` (the whole suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export RUNTIME__DLTHUB_TELEMETRY ?= false
export DBT_SEND_ANONYMOUS_USAGE_STATS ?= false

.PHONY: install browser jdbc demo lint test test-unit test-integration docs bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[test,spark,bench]"
	@touch $(STAMP)

install: $(STAMP) jdbc ## create/update the virtualenv (and the PostgreSQL JDBC driver for Spark's metastore)

demo: $(STAMP) ## newest TLC month sampled with range requests (offline: synthetic mirror) -> embedded PostgreSQL -> dbt -> GX -> models -> API on 127.0.0.1:8000
	$(BIN)/fares demo

test: $(STAMP) lint browser jdbc ## lint and types, then the whole suite: unit, integration (embedded PostgreSQL and DATABASE_URL), e2e
	$(BIN)/python -m pytest

# mypy reads the code through a link named `fares` (under the venv), so modules get their installed names
# (fares.config.settings, ...) whatever this folder is called; tests/ and bench/ are checked under their own names.
lint: $(STAMP) ## ruff (lint + format) and mypy over the Python code, sqlfluff over the dbt models
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@mkdir -p $(VENV)/mypy && ln -sfn "$(CURDIR)" $(VENV)/mypy/fares
	MYPYPATH=$(VENV)/mypy $(BIN)/mypy $(VENV)/mypy/fares tests bench
	$(BIN)/sqlfluff lint dbt_project/models dbt_project/analyses dbt_project/tests

# The web-page test drives Debian's Chromium; install it where we may (root), else that test says why it skips.
browser:
	@command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 || \
	  { if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	      echo "installing chromium + chromium-driver (Debian) for the browser test"; \
	      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) >/dev/null 2>&1 || \
	      echo "could not install chromium: the browser test will skip"; \
	    else echo "chromium not installed and not root: the browser test will skip"; fi; }

# FARES_ENGINE=spark keeps its Hive metastore in PostgreSQL through Java's JDBC driver (FARES_SPARK_JDBC_JAR); Debian
# ships it. Install it where we may (root), else say what to do; the PostgreSQL engine never needs it.
jdbc:
	@test -n "$${FARES_SPARK_JDBC_JAR:-}" || test -f /usr/share/java/postgresql.jar || \
	  { if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	      echo "installing libpostgresql-jdbc-java (Debian) for the Spark metastore in PostgreSQL"; \
	      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libpostgresql-jdbc-java) >/dev/null 2>&1 || \
	      echo "could not install libpostgresql-jdbc-java: set FARES_SPARK_JDBC_JAR to a postgresql jar for the Spark metastore"; \
	    else echo "no PostgreSQL JDBC driver: for the Spark metastore in PostgreSQL, apt-get install libpostgresql-jdbc-java (as root) or set FARES_SPARK_JDBC_JAR to a postgresql jar"; fi; }

test-unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

test-integration: $(STAMP)
	$(BIN)/python -m pytest tests/integration

docs: $(STAMP) ## build the dbt docs site and serve it on 127.0.0.1:8080
	$(BIN)/fares docs

bench: $(STAMP) ## speed and memory ratios against references measured in the same run
	for b in bench/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .data dbt_project/target dbt_project/logs
