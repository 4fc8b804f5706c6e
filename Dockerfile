# verifyd: the API server. Each start applies pending migrations (under a lock, so
# replicas starting together are safe), then serves on 0.0.0.0:8000.
# The image defaults to production mode: it refuses to start without a random
# VERIFYD_SECRET_KEY and an https:// VERIFYD_PUBLIC_BASE_URL, with the sandbox on, or
# with the console provider (see README, "Production floors").
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /build
COPY pyproject.toml README.md ./
COPY src ./src
COPY migrations ./migrations
# The wheel carries the migrations (pyproject: force-include), so the sources can go.
RUN pip install --no-cache-dir "./[postgres]" \
    && rm -rf /build \
    && groupadd --system --gid 10001 verifyd \
    && useradd --no-log-init --system --uid 10001 --gid verifyd \
        --home-dir /srv/verifyd --create-home --shell /usr/sbin/nologin verifyd \
    && install -d -o verifyd -g verifyd -m 0750 /srv/verifyd/var

WORKDIR /srv/verifyd
# The SQLite file and the secret live in var/: a named volume mounted there starts out
# owned by the service user, as the directory in the image is.
# Numeric, so an orchestrator can verify runAsNonRoot without reading /etc/passwd.
USER 10001:10001

ENV VERIFYD_ENV=production \
    VERIFYD_HOST=0.0.0.0 \
    VERIFYD_PORT=8000 \
    VERIFYD_DATABASE_URL=sqlite:////srv/verifyd/var/verifyd.db

EXPOSE 8000

# The slim image has no curl: ask the liveness endpoint with Python's standard library.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('VERIFYD_PORT', '8000'), timeout=2)"]

CMD ["sh", "-c", "verifyd migrate && exec verifyd serve"]
