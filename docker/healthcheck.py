"""The container's health check: is the process this container runs answering?

    python /opt/wallet/healthcheck.py [gateway|command|query]

Without an argument it reads which process runs from PID 1's command line (`wallet serve
command`, ...), which is what the image's HEALTHCHECK does; the ECS task definitions pass
the name. The gateway must answer GET /healthz (liveness only: its readiness, /readyz,
depends on the backends and is the load balancer's business); command and query must say
SERVING to a gRPC health check. Other processes (`wallet update`, `wallet migrate`) are
one-off tasks with no port: healthy while they run.

Exit 0: healthy, 1: not. Ports come from the same settings the services read.
"""

import http.client
import sys
from pathlib import Path

SERVED = ("gateway", "command", "query")
_TIMEOUT = 3.0


def served_process(cmdline: list[str]) -> str | None:
    """`gateway`, `command` or `query` for a `... serve NAME` command line, else None."""
    for position, argument in enumerate(cmdline[:-1]):
        if argument == "serve" and cmdline[position + 1] in SERVED:
            return cmdline[position + 1]
    return None


def _pid1_cmdline() -> list[str]:
    raw = Path("/proc/1/cmdline").read_bytes()
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _gateway_alive(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=_TIMEOUT)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status == 200
    finally:
        connection.close()


def _grpc_serving(port: int) -> bool:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=_TIMEOUT
            )
        except grpc.RpcError as error:
            # At its concurrency bound the server refuses every call, probes too: busy, alive.
            return bool(error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED)
    return bool(response.status == health_pb2.HealthCheckResponse.SERVING)


def check(process: str) -> bool:
    from services.platform.settings import CommandPorts, GatewayPort, QueryPorts

    if process == "gateway":
        return _gateway_alive(GatewayPort().gateway_port)
    port = CommandPorts().command_port if process == "command" else QueryPorts().query_port
    return _grpc_serving(port)


def main(argv: list[str]) -> int:
    process = argv[0] if argv else served_process(_pid1_cmdline())
    if process is None:
        return 0
    if process not in SERVED:
        print(f"healthcheck: unknown process {process!r}; expected one of {SERVED}")
        return 1
    try:
        healthy = check(process)
    except Exception as error:  # any failure to get an answer is "unhealthy"
        print(f"healthcheck: {process}: {type(error).__name__}: {error}")
        return 1
    if not healthy:
        print(f"healthcheck: {process} is not serving")
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
