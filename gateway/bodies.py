"""Reading JSON request bodies strictly: the right content type, at most 16 KiB, numbers
read exactly (as Decimal, never float), and no unknown fields."""

import json
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from fastapi import Request

from gateway import calls
from gateway.problems import Problem

MAX_BODY_BYTES = 16 * 1024


async def json_object(request: Request) -> dict[str, Any]:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise Problem(415, "send a JSON body with Content-Type: application/json")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise Problem(413, f"the body must be at most {MAX_BODY_BYTES} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise Problem(413, f"the body must be at most {MAX_BODY_BYTES} bytes")
    try:
        value = json.loads(body, parse_float=_exact_number)
    except (ValueError, UnicodeDecodeError) as error:
        raise Problem(400, "the body is not valid JSON") from error
    if not isinstance(value, dict):
        raise Problem(400, "the body must be a JSON object")
    return value


def _exact_number(text: str) -> Decimal | str:
    """A JSON number with a fraction or exponent, exactly; its text when Decimal cannot hold
    the exponent (1e-99999999999999999999), so the field's own parser refuses it by name."""
    try:
        return Decimal(text)
    except InvalidOperation:
        return text


def only_fields(body: dict[str, Any], allowed: Iterable[str]) -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise Problem(
            400,
            f"unknown fields: {', '.join(unknown)}",
            errors={name: "is not a known field" for name in unknown},
        )


def required_text(body: dict[str, Any], field: str) -> str:
    value = body.get(field)
    if not isinstance(value, str):
        raise Problem(400, f"{field} is required", errors={field: "must be a string"})
    return value


def amount_text(body: dict[str, Any], field: str = "amount") -> str:
    """The amount as the decimal text the command service reads: JSON numbers arrive as
    Decimal or int, so 1.1 stays exactly 1.1."""
    value = body.get(field)
    if isinstance(value, str):
        return value
    if isinstance(value, (Decimal, int)) and not isinstance(value, bool):
        return str(value)
    raise Problem(400, f"{field} is required", errors={field: "must be a decimal number or string"})


async def deposit_request(request: Request) -> tuple[datetime, str]:
    """(datetime, amount text) of a deposit body {"datetime", "amount"}."""
    body = await json_object(request)
    only_fields(body, ("datetime", "amount"))
    occurred_at = calls.parse_request_datetime(required_text(body, "datetime"), "datetime")
    return occurred_at, amount_text(body)
