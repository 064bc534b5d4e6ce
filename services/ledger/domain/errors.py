"""Validation errors that name the offending field."""

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldViolation:
    """One reason one input field was refused; `field` uses the API's field name."""

    field: str
    description: str


class InvalidInput(ValueError):
    """Input was refused; nothing was changed. Carries every violation found."""

    def __init__(self, violations: list[FieldViolation]) -> None:
        self.violations = violations
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in violations))

    @classmethod
    def single(cls, field: str, description: str) -> "InvalidInput":
        return cls([FieldViolation(field, description)])
