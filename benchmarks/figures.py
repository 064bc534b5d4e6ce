"""How the benchmarks print what they measured: markdown tables, percentiles and targets.

Targets are printed with the measured value and PASS or MISS, never asserted: a benchmark
that ran exits 0 whatever it found.
"""

import statistics
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(values: Sequence[float], percent: int) -> float:
    """The `percent`-th percentile, interpolated between the nearest samples."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[percent - 1]


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
        *("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows),
    ]
    return "\n".join(lines)


@dataclass(frozen=True)
class Target:
    """A figure that should stay at or below `limit`."""

    name: str
    measured: float
    limit: float
    unit: str = ""

    @property
    def verdict(self) -> str:
        return "PASS" if self.measured <= self.limit else "MISS"

    def row(self) -> list[str]:
        return [
            self.name,
            f"{self.measured:.2f}{self.unit}",
            f"≤ {self.limit:g}{self.unit}",
            self.verdict,
        ]


def targets_table(targets: Sequence[Target]) -> str:
    return markdown_table(["target", "measured", "limit", "verdict"], [t.row() for t in targets])


def milliseconds(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"
