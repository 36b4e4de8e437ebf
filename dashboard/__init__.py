"""The live dashboard (``python -m dashboard``): one page that shows, refreshed every few seconds,
today's revenue and funnel, the consumers' throughput, lag and freshness, privacy requests by
deadline, the scheduler's last runs and the last hour's dead letters. Counts and progress only,
never personal data; internal: it listens on the loopback by default."""
