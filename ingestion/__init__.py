"""Ingestion: TLC trip files (URL or folder) -> dlt -> PostgreSQL schema raw; the synthetic TLC-shaped mirror."""
