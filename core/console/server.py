"""The console served over HTTP by waitress, on a thread of its own.

``lienthong console`` runs it in the foreground; ``lienthong run`` (with
``bus.console_port``) and ``lienthong demo`` run it beside the bus. It listens
on 127.0.0.1 unless configured otherwise: put it behind a TLS reverse proxy
(docs/console.md) to reach it from elsewhere.
"""

from __future__ import annotations

import logging
import threading

from waitress.server import create_server

from ..config import Config
from ..errors import ConfigError
from ..host import PluginHost
from .app import create_app
from .services import Console

log = logging.getLogger(__name__)


class ConsoleServer:
    """The console's services, its Flask app, and a waitress server on ``host:port``."""

    def __init__(
        self,
        config: Config,
        host: PluginHost | None = None,
        *,
        listen: str = "127.0.0.1",
        port: int = 8470,
        threads: int = 4,
    ) -> None:
        self.console = Console(config, host)
        self.app = create_app(self.console)
        try:
            self.server = create_server(
                self.app,
                host=listen,
                port=port,
                threads=threads,
                ident="lienthong-console",
                # The proxy, not waitress, is trusted for X-Forwarded-* (ProxyFix in the app).
                clear_untrusted_proxy_headers=False,
            )
        except OSError as exc:
            self.console.close()
            raise ConfigError(
                [
                    f"bus.console_port: the console cannot listen on {listen}:{port} "
                    f"({exc.strerror}). Hint: choose another port, or stop what uses it"
                ]
            ) from exc
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server.effective_host, self.server.effective_port  # type: ignore[union-attr]
        return f"http://{host}:{port}/"

    def start(self) -> ConsoleServer:
        """Serve on a thread of its own; returns at once."""
        self.console.start()
        self._thread = threading.Thread(target=self.server.run, name="console", daemon=True)
        self._thread.start()
        log.info("console at %s", self.url)
        return self

    def serve(self) -> None:
        """Serve in this thread until interrupted (``lienthong console``)."""
        self.console.start()
        try:
            self.server.run()
        finally:
            self.console.close()

    def stop(self) -> None:
        """Close every connection and the listening socket, then the console's own bus."""
        server = self.server

        def close_all() -> None:
            # Runs in the server's own loop thread, so no channel is closed under it.
            for channel in list(server._map.values()):  # type: ignore[union-attr]
                channel.close()

        if self._thread is not None:
            server.trigger.pull_trigger(close_all)  # type: ignore[union-attr]
            self._thread.join(timeout=10)
            self._thread = None
        server.task_dispatcher.shutdown()  # type: ignore[union-attr]
        self.console.close()
