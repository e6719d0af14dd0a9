# Image for the progress service processes (worker, sink, api); see docker-compose.yml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY . /src
RUN pip install . \
 && useradd --create-home --uid 10001 progress \
 && mkdir -p /var/lib/progress \
 && chown progress:progress /var/lib/progress

# Faust keeps its table state under its data dir, relative to the working directory by
# default, so run from a directory the service user can write to.
WORKDIR /var/lib/progress
USER progress

ENV KAFKA_BOOTSTRAP=kafka:9092 \
    DATABASE_URL=postgresql://progress:progress@postgres:5432/progress \
    REDIS_URL=redis://redis:6379/0 \
    API_HOST=0.0.0.0 \
    API_PORT=8080

EXPOSE 8080
CMD ["progress", "api"]
