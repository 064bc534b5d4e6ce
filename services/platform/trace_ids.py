"""Trace ids in the AWS format (X-Amzn-Trace-Id), shared by the gateway and the gRPC services
so one request can be followed through every process's log."""

import re
import secrets
import time

# The gRPC metadata key the gateway passes a request's trace id in (keys are lower case).
TRACE_ID_METADATA = "x-amzn-trace-id"

# Visible ASCII with inner spaces, bounded: the value goes into log lines and a response
# header, so a client may not put line breaks or kilobytes there. AWS's ids are far shorter.
_ACCEPTABLE = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]{0,254}[\x21-\x7e])?")


def new_trace_id() -> str:
    """`Root=1-<8 hex digits of the epoch seconds>-<24 random hex digits>`, as an AWS load
    balancer makes them."""
    return f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)}"


def accepted_trace_id(received: str | None) -> str:
    """The trace id a caller sent when it is safe to log and echo, else a new one."""
    if received is not None and _ACCEPTABLE.fullmatch(received):
        return received
    return new_trace_id()
