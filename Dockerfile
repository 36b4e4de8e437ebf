# One image for every service of docker-compose.yml (the migrator, the consumers, the generator,
# the collector, the privacy API, the GDPR processor, the DPO console, the scheduler, the live
# dashboard, the development mail server) and for the one-off commands run in it (batch, reports,
# retention), which the scheduler runs too. Every package a service's module imports, and every command the scheduler
# runs, is copied here: tests/unit/test_compose.py checks it against the compose file.
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
COPY analytics ./analytics
COPY gdpr ./gdpr
COPY reports ./reports
COPY console ./console
COPY scheduler ./scheduler
COPY dashboard ./dashboard
COPY devstack ./devstack
COPY config.py ./config.py
# One user, with a fixed uid, for every service: the GDPR processor writes access exports readable
# by their owner only (0600) to the `reports` volume, and the privacy API, in another container
# built from this file, reads and deletes them. The volume starts as a copy of reports/output,
# owned by this user.
RUN useradd --create-home --uid 1000 app && mkdir -p reports/output mail && chown -R app reports/output mail
USER app
CMD ["python", "-m", "core.db", "--help"]
