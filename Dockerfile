# webhookd image: the API (`webhookd serve`, default) and the workers (`webhookd worker`).
#   docker build -t webhookd .
#   docker run -p 8000:8000 -e WEBHOOKD_DATABASE_URL=postgresql://... webhookd

# --- build: install the package and its dependencies into a virtualenv ----------------------
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY src ./src
RUN /opt/venv/bin/pip install ".[server]"

# --- runtime: the virtualenv only, run as an unprivileged user --------------------------------
FROM python:3.11-slim

ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    WEBHOOKD_METRICS_PORT=9101

RUN groupadd --system --gid 10001 webhookd \
    && useradd --system --uid 10001 --gid webhookd --home-dir /app --create-home \
       --shell /usr/sbin/nologin webhookd

COPY --from=build /opt/venv /opt/venv

WORKDIR /app
USER webhookd

# 8000: the API (and its /metrics); 9101: a worker's /metrics (WEBHOOKD_METRICS_PORT).
EXPOSE 8000 9101

# Liveness of the API. docker-compose.yml gives the workers their own check (port 9101).
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=3)"]

CMD ["webhookd", "serve", "--host", "0.0.0.0", "--port", "8000"]
