"""Entry point of `wallet serve gateway`: the app under uvicorn (which stops gracefully on
SIGTERM: in-flight requests finish, new connections are refused)."""

import uvicorn

from gateway.app import create_app
from services.platform.settings import GatewaySettings


def serve(settings: GatewaySettings) -> None:
    uvicorn.run(
        create_app(settings),
        host=settings.listen_host,
        port=settings.gateway_port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
        timeout_keep_alive=settings.gateway_keep_alive_seconds,
        access_log=False,
        proxy_headers=True,
        forwarded_allow_ips=settings.trusted_proxies,
        log_config=None,  # keep the JSON lines the CLI configured, like the other services
    )
