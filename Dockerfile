# Multi-stage: build a wheel-only virtualenv, then copy it into a slim runtime as a non-root user.
FROM python:3.11-slim AS build
# A C compiler for the matching core (setup.py compiles it with mypyc); the runtime needs none.
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
RUN python -m venv /venv
COPY pyproject.toml setup.py README.md constraints.txt ./
COPY app ./app
COPY matching ./matching
COPY migrations ./migrations
# constraints.txt's versions for the build's own environment too (setuptools, mypy for mypyc):
# `-c` would not reach it (docs/operations.md).
RUN PIP_CONSTRAINT=constraints.txt PIP_BUILD_CONSTRAINT=constraints.txt /venv/bin/pip install --no-cache-dir .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 auction
COPY --from=build /venv /venv
WORKDIR /home/auction
ENV PATH=/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    LOAN_AUCTION_HOST=0.0.0.0 \
    LOAN_AUCTION_PORT=8000 \
    LOAN_AUCTION_DATA_DIR=/home/auction/data
USER auction
EXPOSE 8000
# Liveness, not readiness: a hot standby is healthy while /readyz answers 503 "standby".
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"
ENTRYPOINT ["loan-auction"]
CMD ["serve"]
