# One image for every plant service; docker-compose.yml picks the service with its command.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY engine engine
COPY tui tui
COPY scenarios scenarios
COPY rules rules
RUN pip install --no-cache-dir .
# Data (scenarios, rules) from /app, runtime state on a volume, HTTP reachable from the host.
ENV CONTROLROOM_HOME=/app \
    CONTROLROOM_VAR=/var/lib/controlroom \
    CONTROLROOM_HOST=0.0.0.0 \
    PYTHONUNBUFFERED=1
VOLUME /var/lib/controlroom
