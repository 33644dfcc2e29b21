"""The data quality gate between loading and training: Great Expectations suites, the validate stage, its results.

Importing this package is cheap: Great Expectations itself is imported only inside the functions that run it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fares.quality.validate import ValidationReport


class QualityGateError(RuntimeError):
    """A critical expectation failed; the message is the readable summary and `report` holds every result."""

    def __init__(self, message: str, report: ValidationReport | None = None) -> None:
        super().__init__(message)
        self.report = report


__all__ = ["QualityGateError"]
