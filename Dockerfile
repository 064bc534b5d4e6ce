# syntax=docker/dockerfile:1
# One image for every process. The entry point is `wallet`; each ECS task passes its
# subcommand:
#   serve gateway | serve command | serve query | update | update --rebuild | migrate
# Build for the platform the task definitions ask for (X86_64):
#   docker build --platform linux/amd64 -t wallet:TAG .
# Python 3.11, the version CI tests (pyproject: >=3.11,<3.13), in both stages (the venv is
# copied across). Pin a digest (python:3.11-slim-bookworm@sha256:...) in production.

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# The versions CI tested: requirements/image.lock pins every runtime dependency (not the
# `test` and `local` extras: no test tools, no pgserver, the embedded PostgreSQL; the image
# gets its database from WALLET_DATABASE_* or DATABASE_URL) to the release test.lock pins,
# which is what the Makefile's venv, and so CI, installs; pip checks each file's hash. Then
# the project itself, without resolving anything; `pip check` fails the build if the lock
# misses a dependency, the last command if pgserver came in anyway. `make lock` writes the
# locks; `make image-check` builds this file and runs each process from the image.
COPY requirements/pip.lock requirements/image.lock ./requirements/
RUN pip install --require-hashes -r requirements/pip.lock \
    && pip install --require-hashes -r requirements/image.lock
COPY pyproject.toml ./
COPY services ./services
COPY gateway ./gateway
COPY wallet_cli ./wallet_cli
COPY wallet ./wallet
RUN pip install --no-deps . \
    && pip check \
    && if pip show pgserver >/dev/null 2>&1; then echo "pgserver must not be in the image" >&2; exit 1; fi

FROM python:3.11-slim-bookworm AS runtime
RUN groupadd --system --gid 10001 wallet \
    && useradd --system --uid 10001 --gid wallet --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin wallet
COPY --from=build /opt/venv /opt/venv
COPY docker/healthcheck.py /opt/wallet/healthcheck.py
# Bytecode was compiled at install; the tasks run with a read-only root file system.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
WORKDIR /opt/wallet
# The tasks mount an empty volume at /tmp over the read-only root. ECS copies a VOLUME's
# content and mode into the task's volume at the same path; without this declaration the
# volume is root's 0755 and the non-root user cannot write there.
RUN chmod 1777 /tmp
VOLUME ["/tmp"]
USER 10001:10001
# gateway (HTTP), command and query (gRPC), then the metrics ports of command, query and the
# updater: the defaults in services/platform/settings.py.
EXPOSE 8080 50051 50052 9101 9102 9103
# Finds the served process from PID 1's command line; healthy for one-off tasks.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["python", "/opt/wallet/healthcheck.py"]
ENTRYPOINT ["wallet"]
CMD ["--help"]
