# A selfheal worker + API image. The Temporal server itself is not in it: point TEMPORAL_ADDRESS
# at your cluster (or at the `temporal` service of docker-compose.yml).
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends git && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml constraints.txt README.md worker.py ./
COPY selfheal selfheal
COPY workflows workflows
COPY activities activities
COPY starter starter
COPY dashboard dashboard
RUN pip install --no-cache-dir -c constraints.txt .
ENV SELFHEAL_DATA_DIR=/data
VOLUME /data
CMD ["selfheal", "worker"]
