"""Month arithmetic and parsing of the `--months` arguments ("2024-01", "2024-01..2024-06")."""

from __future__ import annotations

import re
from datetime import date

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


class MonthError(ValueError):
    """A month argument is not YYYY-MM or a range of them."""


def check_month(text: str) -> str:
    """Return `text` if it is a valid YYYY-MM month, else raise MonthError."""
    m = _MONTH.match(text.strip())
    if not m or not 1 <= int(m.group(2)) <= 12 or int(m.group(1)) < 2009:
        raise MonthError(f"{text!r} is not a month like 2024-01 (TLC records start in 2009)")
    return text.strip()


def add_months(month: str, n: int) -> str:
    """The month `n` months after `month` (n may be negative)."""
    year, mon = int(month[:4]), int(month[5:7])
    index = year * 12 + mon - 1 + n
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def month_range(first: str, last: str) -> list[str]:
    """Every month from `first` to `last`, both included."""
    check_month(first)
    check_month(last)
    if last < first:
        raise MonthError(f"range {first}..{last} ends before it starts")
    out = [first]
    while out[-1] < last:
        out.append(add_months(out[-1], 1))
    return out


def parse_months(args: list[str]) -> list[str]:
    """Expand "2024-01", "2024-01..2024-06" (also comma-separated) into a sorted list of unique months."""
    months: set[str] = set()
    for arg in args:
        for part in (p.strip() for p in arg.split(",")):
            if not part:
                continue
            if ".." in part:
                first, _, last = part.partition("..")
                months.update(month_range(first.strip(), last.strip()))
            else:
                months.add(check_month(part))
    return sorted(months)


def current_month(today: date | None = None) -> str:
    """The calendar month of `today` (default: now) as YYYY-MM."""
    today = today or date.today()
    return f"{today.year:04d}-{today.month:02d}"


def month_of_file(name: str) -> str | None:
    """The YYYY-MM in a TLC file name such as `yellow_tripdata_2024-01.parquet`, or None."""
    m = re.search(r"_(\d{4}-\d{2})\.parquet$", name)
    return m.group(1) if m else None
