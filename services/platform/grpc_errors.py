"""How domain and store failures leave a servicer: as status codes with rich details."""

from typing import NoReturn, TypeVar

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from services.ledger.domain.errors import InvalidInput

DetailT = TypeVar("DetailT", bound=Message)


def abort_invalid(context: grpc.ServicerContext, error: InvalidInput) -> NoReturn:
    """INVALID_ARGUMENT with one google.rpc.BadRequest field violation per bad field."""
    bad_request = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
            for v in error.violations
        ]
    )
    abort_with_details(context, grpc.StatusCode.INVALID_ARGUMENT, str(error), bad_request)


def abort_with_details(
    context: grpc.ServicerContext, code: grpc.StatusCode, message: str, detail: Message
) -> NoReturn:
    """Ends the call with `code` and `detail` packed into the google.rpc.Status details."""
    packed = any_pb2.Any()
    packed.Pack(detail)
    status = status_pb2.Status(code=code.value[0], message=message, details=[packed])
    context.abort_with_status(rpc_status.to_status(status))
    raise AssertionError("abort_with_status returns only by raising")


def field_violations(error: grpc.RpcError) -> dict[str, str]:
    """The BadRequest field violations a client received, by field name."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    violations: dict[str, str] = {}
    for detail in status.details if status else []:
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request):
            violations.update({v.field: v.description for v in bad_request.field_violations})
    return violations


def status_detail(error: grpc.RpcError, kind: type[DetailT]) -> DetailT | None:
    """The first detail of type `kind` in the status a client received, if any."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    for detail in status.details if status else []:
        found = kind()
        if detail.Unpack(found):
            return found
    return None
