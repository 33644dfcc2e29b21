# One image for both long-running services: `fares schedule` (the daemon) and `fares serve` (the API).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RUNTIME__DLTHUB_TELEMETRY=false \
    DBT_SEND_ANONYMOUS_USAGE_STATS=false \
    FARES_DATA_DIR=/data

WORKDIR /app

# Dependencies first, from pyproject.toml alone, so a code change does not reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt

# Editable, so dbt finds dbt_project/ at /app and can write its target/ there (a plain
# `pip install .` would copy the modules into site-packages, away from dbt_project/).
COPY . .
RUN pip install --no-deps -e . \
    && useradd --create-home --uid 10001 fares \
    && mkdir -p /data \
    && chown -R fares /data /app/dbt_project

USER fares
VOLUME ["/data"]
EXPOSE 8000

# Exec form: the process is PID 1 and gets SIGTERM itself (the scheduler finishes its running stage).
CMD ["fares", "serve", "--host", "0.0.0.0"]
