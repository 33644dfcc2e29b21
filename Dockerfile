# One image for both long-running services: `fares schedule` (the daemon) and `fares serve` (the API).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RUNTIME__DLTHUB_TELEMETRY=false \
    DBT_SEND_ANONYMOUS_USAGE_STATS=false \
    FARES_DATA_DIR=/data

# Dependencies first, from pyproject.toml alone, so a code change does not reinstall them.
COPY pyproject.toml /tmp/fares/
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('/tmp/fares/pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt

# A plain install: the code and dbt_project/ go into site-packages (read-only at run time); dbt writes its target/ and
# logs/ under the data folder, and the code version is a hash of the installed files (no .git needed).
COPY . /tmp/fares/
RUN pip install --no-deps /tmp/fares \
    && rm -rf /tmp/fares /tmp/requirements.txt \
    && useradd --create-home --uid 10001 fares \
    && mkdir -p /data \
    && chown -R fares /data

USER fares
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000

# Exec form: the process is PID 1 and gets SIGTERM itself (the scheduler finishes its running stage).
CMD ["fares", "serve", "--host", "0.0.0.0"]
