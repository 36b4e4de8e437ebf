# One image for every service of the platform (consumers, generator, migrator, batch, reports).
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt
COPY core ./core
COPY sql ./sql
COPY data_generators ./data_generators
COPY collector ./collector
COPY consumers ./consumers
COPY batch ./batch
COPY gdpr ./gdpr
COPY reports ./reports
COPY devstack ./devstack
COPY config.py ./config.py
RUN useradd --create-home app && mkdir -p reports/output mail && chown -R app reports/output mail
USER app
CMD ["python", "-m", "core.db", "--help"]
