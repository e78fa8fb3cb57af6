# The Weftworks image: one image for the API, the workers and `weft migrate`
# (docker-compose.yml picks the command per service).
FROM python:3.11.10-slim

# The ML extra (MiniLM embeddings, OCR) is what chunking, RAG and scanned pages
# need: the API embeds questions and the workers embed and OCR documents. The
# Qdrant and S3 backends are extras too, so one image serves either setting.
ARG EXTRAS=ml,qdrant,s3
# torch, CPU-only: set TORCH_INDEX_URL to PyTorch's CPU wheel index (the
# default index serves the multi-GB CUDA build). The version is pyproject's pin.
ARG TORCH_INDEX_URL=""
ARG TORCH_VERSION=2.13.0

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
RUN if [ -n "$TORCH_INDEX_URL" ]; then \
        pip install --no-cache-dir --index-url "$TORCH_INDEX_URL" "torch==${TORCH_VERSION}"; \
    fi \
    && pip install --no-cache-dir ".[${EXTRAS}]" \
    && mkdir -p /data \
    && chown weft:weft /data

# /data exists and belongs to weft, so a named volume mounted there (blobs)
# starts out writable by the non-root user.
USER weft

EXPOSE 8000
CMD ["weft", "api", "--host", "0.0.0.0"]
