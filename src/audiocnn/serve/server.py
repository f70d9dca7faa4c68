"""Run the app with uvicorn: one process, the model loaded once, bound to 127.0.0.1 unless told."""

from __future__ import annotations

import ipaddress
import sys

from audiocnn.serve.app import create_app
from audiocnn.serve.settings import ServeSettings

#: Seconds uvicorn waits for a client's next request on a kept-alive connection.
KEEP_ALIVE_S = 5


def run(settings: ServeSettings, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> None:
    import uvicorn

    app = create_app(settings)  # the model loads before the port opens: a broken bundle never half-starts
    if not _loopback(host) and settings.api_key is None:
        print(f"audiocnn: warning: serving on {host} without --api-key: anyone who reaches this port can use it",
              file=sys.stderr)
    print(f"audiocnn: serving {app.state.model_name} on http://{_url_host(host)}:{port}/ (API documents at /docs)",
          file=sys.stderr)
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_keep_alive=KEEP_ALIVE_S,
                server_header=False, proxy_headers=False)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
