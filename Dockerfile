# Image for the progress service processes (worker, sink, api); see docker-compose.yml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# Dependencies first, from pyproject.toml alone: this layer is rebuilt only when they change,
# not on every code edit.
COPY pyproject.toml /src/
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
      >/tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt
# Then the code, installed without touching the dependencies.
COPY . /src
RUN pip install --no-deps . \
 && useradd --create-home --uid 10001 progress \
 && mkdir -p /var/lib/progress/worker \
 && chown -R progress:progress /var/lib/progress

# The worker keeps its RocksDB tables under WORKER_DATA_DIR: docker-compose.yml mounts a
# volume there, so a recreated container replays only what it missed from the changelogs.
WORKDIR /var/lib/progress
USER progress

# Defaults for the compose network; an env file (docker-compose.yml) overrides any of them.
ENV KAFKA_BOOTSTRAP=kafka:9092 \
    DATABASE_URL=postgresql://progress:progress@postgres:5432/progress \
    REDIS_URL=redis://redis:6379/0 \
    WORKER_DATA_DIR=/var/lib/progress/worker \
    API_HOST=0.0.0.0 \
    API_PORT=8080 \
    API_AUTH=jwt

EXPOSE 8080 8081 8082
# Exec form: the process is PID 1 and gets SIGTERM itself (every process stops gracefully on
# it: the worker and the API through their frameworks, the sink after its batch).
CMD ["progress", "api"]
