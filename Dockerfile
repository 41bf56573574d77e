# The authload image: `authload` is the entrypoint (mock, run, worker, report, smoke, ...).
#   docker build -t authload:local .
#   docker run --rm authload:local smoke
#   docker run --rm -p 127.0.0.1:8080:8080 authload:local mock --host 0.0.0.0
# docker-compose.yml and deploy/k8s/ run it as the mock, a run's master and its workers.
# Dependencies are exactly those of uv.lock (uv sync --frozen), without the dev group.

FROM python:3.11-slim-bookworm AS build
RUN pip install --no-cache-dir --disable-pip-version-check uv==0.13.9
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /app
# the dependencies first: this layer is reused until pyproject.toml or uv.lock change
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project
# then authload itself, installed into the environment (not editable: src/ stays behind)
COPY README.md ./
COPY src/ src/
RUN uv sync --frozen --no-dev --no-editable

FROM python:3.11-slim-bookworm
RUN useradd --create-home --uid 10001 --user-group authload \
    && mkdir /runs \
    && chown authload:authload /runs
COPY --from=build /app/.venv /app/.venv
WORKDIR /app
# what the commands name by relative path: scenarios, the targets file, the locust files
COPY scenarios/ scenarios/
COPY deploy/ deploy/
COPY locustfiles/ locustfiles/
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1
USER authload
# mock, Locust master, run metrics (master, worker)
EXPOSE 8080 5557 9646 9647
ENTRYPOINT ["authload"]
CMD ["--help"]
