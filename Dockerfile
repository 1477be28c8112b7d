# Gatehouse container image — one image for the console and for environment servers
# (GATEHOUSE_ROLE=console|environment); every setting comes from the environment.
#
#   docker build -t gatehouse .
#   podman build --format docker -t gatehouse .    # docker format keeps the HEALTHCHECK
#
# Two stages: the build stage creates a virtual environment and installs Gatehouse with its
# runtime extras into it; the runtime stage copies only that environment onto a slim Debian
# with the system Python (no pip, no compiler, no source tree, no package lists).
# docs/production.md ("Containers") describes volumes, read-only root and health checks.

ARG BASE_IMAGE=debian:bookworm-slim

# -- build ----------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS build
LABEL org.opencontainers.image.title="gatehouse"
ENV DEBIAN_FRONTEND=noninteractive \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv binutils \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/gatehouse
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# The extras name the database and cache drivers a deployment may use (PostgreSQL, Redis).
# Several wheels ship their extension modules with debug information (uvloop's alone is 12 of its
# 14 MB): --strip-debug removes only that, never a symbol the dynamic linker needs; the
# libraries auditwheel grafted into *.libs directories are left as they are.
# Byte-code is compiled once here: a read-only root file system cannot cache it at run time.
RUN /opt/gatehouse/bin/pip install --no-compile ".[postgres,redis]" \
 && /opt/gatehouse/bin/pip uninstall --yes pip setuptools \
 && find /opt/gatehouse -depth -name __pycache__ -type d -exec rm -rf {} + \
 && find /opt/gatehouse -name '*.so' -not -path '*.libs/*' -exec strip --strip-debug {} + \
 && /opt/gatehouse/bin/python -m compileall -q -j 0 --invalidation-mode unchecked-hash \
      /opt/gatehouse/lib \
 && /opt/gatehouse/bin/gatehouse --version

# -- runtime --------------------------------------------------------------------------------
FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="gatehouse" \
      org.opencontainers.image.description="Gatehouse: single sign-on for the IT users of a platform, through your IdP" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV DEBIAN_FRONTEND=noninteractive
# python3: the interpreter the virtual environment was made with (same path as in the build
# stage). ca-certificates: the OS trust store, for an IdP or proxy behind a private CA
# (SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt).
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 ca-certificates \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/debconf/*-old \
      /var/log/apt /var/log/dpkg.log \
 && groupadd --gid 10001 gatehouse \
 && useradd --uid 10001 --gid 10001 --no-log-init --no-create-home \
      --home-dir /var/lib/gatehouse --shell /usr/sbin/nologin gatehouse \
 && install -d -o 10001 -g 10001 -m 0700 /var/lib/gatehouse
COPY --from=build /opt/gatehouse /opt/gatehouse

ENV PATH=/opt/gatehouse/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GATEHOUSE_DATA_DIR=/var/lib/gatehouse \
    GATEHOUSE_HOST=0.0.0.0 \
    GATEHOUSE_PORT=8000

# A numeric user, so that Kubernetes' runAsNonRoot can verify it without /etc/passwd.
USER 10001:10001
WORKDIR /var/lib/gatehouse
VOLUME ["/var/lib/gatehouse"]
EXPOSE 8000

# Liveness from inside the container; the slim image has no curl. http.client ignores
# HTTP(S)_PROXY, which an operator may set for the IdP.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python3", "-I", "-c", "import http.client, os, sys; c = http.client.HTTPConnection('127.0.0.1', int(os.environ.get('GATEHOUSE_PORT', '8000')), timeout=4); c.request('GET', '/healthz'); sys.exit(c.getresponse().status != 200)"]

ENTRYPOINT ["gatehouse"]
CMD ["serve"]
