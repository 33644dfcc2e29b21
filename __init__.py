"""fares: yellow taxi or Uber, which is cheaper for this NYC trip? ELT + ML on the TLC's own trip records.

This folder is the `fares` package (setuptools maps it in pyproject.toml): `fares.settings`, `fares.warehouse`,
`fares.scheduler`, `fares.cli` and the stage subpackages `fares.ingestion`, `fares.quality`, `fares.ml`, `fares.api`.
"""
