"""Reports: the daily business KPI report and the GDPR audit report, on the console and as files."""
