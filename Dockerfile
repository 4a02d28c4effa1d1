FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY events events
COPY projections projections
COPY schemas schemas
COPY services services
RUN pip install --no-cache-dir . && useradd --create-home qmstats \
    && mkdir /home/qmstats/data && chown qmstats:qmstats /home/qmstats/data
# The data directory holds the log's signing key (created on first start unless QMSTATS_LOG_SIGNING_KEY is set).
ENV QMSTATS_DATA_DIR=/home/qmstats/data
USER qmstats
EXPOSE 8080
CMD ["qmstats", "serve", "--host", "0.0.0.0"]
