"""The data quality gate between loading and training: Great Expectations suites, the validate stage, its results.

Importing this package is cheap: Great Expectations itself is imported only inside the functions that run it.
"""

from __future__ import annotations

from fares.quality.validate import QualityGateError

__all__ = ["QualityGateError"]
