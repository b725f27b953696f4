# digestbot: `docker run -v ./config.toml:/config/config.toml -v digestbot-data:/data digestbot`
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DIGESTBOT_CONFIG=/config/config.toml

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY templates ./templates
RUN pip install '.[postgres]' && rm -rf /app/build

RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin digestbot \
    && mkdir -p /config /data && chown digestbot /data
USER digestbot
WORKDIR /data
VOLUME ["/config", "/data"]

# In the config, point the database at the volume: database = "sqlite:////data/digestbot.sqlite3"
ENTRYPOINT ["digestbot"]
CMD ["run", "--config", "/config/config.toml"]
