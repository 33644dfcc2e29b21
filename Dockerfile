# One image for the long-running services: `fares schedule` (the daemon) and `fares serve` (the API).
# `--build-arg FARES_EXTRAS=spark` makes the Spark variant (docker-compose.yml's profile `spark`): a Java 17 runtime,
# Debian's PostgreSQL JDBC driver (the shared metastore) and the spark extra, for the scheduler, the API and
# `fares spark master|worker|thrift`. The default stays small: no Java, no Spark.
FROM python:3.11-slim

# Extras of pyproject.toml to install besides the dependencies, comma-separated (e.g. "spark").
ARG FARES_EXTRAS=""

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RUNTIME__DLTHUB_TELEMETRY=false \
    DBT_SEND_ANONYMOUS_USAGE_STATS=false \
    FARES_DATA_DIR=/data

# Spark runs on the JVM; the JDBC driver lands at /usr/share/java/postgresql.jar (FARES_SPARK_JDBC_JAR's default).
# Slim images leave out /usr/share/man, where the JRE's post-install may link its man pages (and fail without it).
RUN case ",${FARES_EXTRAS}," in *,spark,*) \
        mkdir -p /usr/share/man/man1 \
        && apt-get update \
        && apt-get install -y --no-install-recommends openjdk-17-jre-headless libpostgresql-jdbc-java \
        && rm -rf /var/lib/apt/lists/* ;; \
    esac

# Dependencies first, from pyproject.toml alone, so a code change does not reinstall them: the project's dependencies
# plus those of each extra named in FARES_EXTRAS (an unknown extra fails the build).
COPY pyproject.toml /tmp/fares/
RUN cd /tmp/fares && python -c "import os, tomllib; \
        project = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
        extras = [e.strip() for e in os.environ.get('FARES_EXTRAS', '').split(',') if e.strip()]; \
        print('\n'.join(project['dependencies'] + [r for e in extras for r in project['optional-dependencies'][e]]))" \
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
