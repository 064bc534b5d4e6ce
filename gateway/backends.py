"""The gateway's async gRPC channels to the command and query services."""

import asyncio

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from wallet.v1 import command_pb2_grpc, query_pb2_grpc

_READINESS_TIMEOUT = 1.0


class Backends:
    """Stubs on one channel per service; open inside the event loop that uses them."""

    def __init__(self, command_address: str, query_address: str, deadline: float) -> None:
        self.deadline = deadline
        self._command_channel = grpc.aio.insecure_channel(command_address)
        self._query_channel = grpc.aio.insecure_channel(query_address)
        self.command = command_pb2_grpc.WalletCommandStub(self._command_channel)
        self.query = query_pb2_grpc.WalletQueryStub(self._query_channel)

    async def readiness(self) -> dict[str, bool]:
        """Whether each backend's health check says SERVING, asked concurrently."""
        command, query = await asyncio.gather(
            _serving(self._command_channel), _serving(self._query_channel)
        )
        return {"command": command, "query": query}

    async def close(self) -> None:
        await asyncio.gather(self._command_channel.close(None), self._query_channel.close(None))


async def _serving(channel: grpc.aio.Channel) -> bool:
    try:
        response = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=_READINESS_TIMEOUT
        )
    except grpc.RpcError as error:
        # At its concurrency bound a service refuses probes too: it is busy, not down, and
        # taking this gateway out of the load balancer would not help it.
        return bool(error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED)
    return bool(response.status == health_pb2.HealthCheckResponse.SERVING)
