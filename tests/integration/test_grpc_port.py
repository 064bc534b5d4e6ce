"""A service never shares its port with another one."""

import pytest

from services.command import server as command_server
from services.platform.grpc_server import GrpcService
from services.platform.settings import CommandSettings


def test_a_second_service_on_a_taken_port_fails_to_start(
    command_service: GrpcService, settings: CommandSettings
) -> None:
    """grpcio's default SO_REUSEPORT let both bind and split the calls between them."""
    with pytest.raises(OSError, match="in use"):
        command_server.build(settings, port=command_service.port)
