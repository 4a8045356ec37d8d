# syntax=docker/dockerfile:1
# One image for every Quartet service: QUARTET_SERVICE (or the SERVICE build argument) picks the
# app, gunicorn with uvicorn workers serves it on $PORT. Target `mtail` builds the gateway's
# metrics sidecar. docs/deploy.md has the build and run commands.
#
# The base is pinned to a patch release; pin its digest too in a release pipeline
# (`docker buildx imagetools inspect` gives it) so a rebuild is byte-for-byte the same base.
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm
ARG DEBIAN_IMAGE=debian:bookworm-20241111-slim

FROM ${PYTHON_IMAGE} AS deps
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /build
# Dependencies before code, so a code change reuses this layer: the runtime dependencies of
# pyproject.toml (not the dev tools) at the versions requirements.lock pins.
COPY pyproject.toml requirements.lock ./
# Offline builds only (`make image` where the build cannot reach PyPI, docs/deploy.md): a
# wheelhouse/ in the context and PIP_INSTALL_FLAGS="--no-index --find-links=/build/wheelhouse".
# The glob copies nothing when there is none (requirements.lock is there to match something).
COPY requirements.lock wheelhous[e] /build/wheelhouse/
ARG PIP_INSTALL_FLAGS=
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > runtime.txt \
    && pip install ${PIP_INSTALL_FLAGS} -r runtime.txt -c requirements.lock

FROM ${DEBIAN_IMAGE} AS mtail
RUN apt-get update \
    && apt-get install -y --no-install-recommends mtail \
    && rm -rf /var/lib/apt/lists/*
USER 65534:65534
EXPOSE 3903
ENTRYPOINT ["mtail"]

FROM ${PYTHON_IMAGE} AS service
ARG SERVICE=
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    QUARTET_SERVICE=${SERVICE} \
    PORT=8000 \
    WEB_CONCURRENCY=2 \
    PROMETHEUS_MULTIPROC_DIR=/tmp/metrics \
    ENVIRONMENT=production
# /data/banner belongs to the service user so a fresh named volume mounted there does too (the
# demo-data job writes the banner dataset into it).
RUN groupadd --system --gid 10001 quartet \
    && useradd --system --uid 10001 --gid quartet --home-dir /nonexistent --no-create-home \
       --shell /usr/sbin/nologin quartet \
    && mkdir -p /data/banner && chown 10001:10001 /data/banner
COPY --from=deps /opt/venv /opt/venv
WORKDIR /app
COPY services/ services/
# Compiled at build time: the root filesystem is read-only at run time.
RUN python -m compileall -q services
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-m", "services.common.probe", "/healthz"]
# gunicorn turns SIGTERM into a graceful stop: workers finish their requests and run the shutdown
# hooks (the counter flushes its buffer) within graceful_timeout (30 s).
STOPSIGNAL SIGTERM
ENTRYPOINT ["gunicorn", "-c", "python:services.common.gunicorn_conf"]
