# The Weftworks image: one image for the API, the workers and `weft migrate`
# (docker-compose.yml picks the command per service).
FROM python:3.11.10-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    WEFT_DATA_DIR=/data

RUN groupadd --system --gid 10001 weft \
    && useradd --system --uid 10001 --gid weft --home-dir /app --shell /usr/sbin/nologin weft

WORKDIR /app

COPY pyproject.toml README.md ./
COPY engine ./engine
COPY workers ./workers
COPY api ./api
COPY workflows ./workflows
RUN pip install --no-cache-dir . \
    && mkdir -p /data \
    && chown weft:weft /data

# /data exists and belongs to weft, so a named volume mounted there (blobs)
# starts out writable by the non-root user.
USER weft

EXPOSE 8000
CMD ["weft", "api", "--host", "0.0.0.0"]
