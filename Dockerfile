FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY events events
COPY projections projections
COPY schemas schemas
COPY services services
RUN pip install --no-cache-dir . && useradd --create-home qmstats
USER qmstats
EXPOSE 8080
CMD ["qmstats", "serve", "--host", "0.0.0.0"]
