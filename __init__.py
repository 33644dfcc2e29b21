"""fares: yellow taxi or Uber, which is cheaper for this NYC trip? ELT + ML on the TLC's own trip records.

This folder is the `fares` package (setuptools maps it in pyproject.toml). Its subpackages follow the data's one way:
`config` <- `ops` <- `engines` <- `ingestion` <- `quality`, `ml` <- `chain` <- `api`, `scheduler` <- `cli`
(ARCHITECTURE.md says what each owns and why the layout is so).
"""
