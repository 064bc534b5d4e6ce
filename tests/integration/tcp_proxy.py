"""A TCP proxy to put between a service and its database, to take the database away and give
it back without touching the server."""

import contextlib
import errno
import socket
import threading
import time
from types import TracebackType

# (host, port) for TCP, or a path for a Unix socket (pgserver listens on one).
Target = tuple[str, int] | str

_POLL_SECONDS = 0.05


class TcpProxy:
    """Accepts on 127.0.0.1:`port` and forwards each connection to `target`.

    cut() closes every forwarded connection and refuses new ones (like a server that went
    down); restore() accepts again on the same port."""

    def __init__(self, target: Target) -> None:
        self._target = target
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._threads: list[threading.Thread] = []
        self.port = 0
        self.connections_accepted = 0
        self.restore()

    def __enter__(self) -> "TcpProxy":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def restore(self) -> None:
        """Listens (again) on the proxy's port."""
        with self._lock:
            if self._listener is not None:
                return
            listener = _listen(self.port)
            self.port = listener.getsockname()[1]
            self._listener = listener
        self._acceptor = self._spawn(self._accept, listener)

    def cut(self) -> None:
        """Closes every forwarded connection and stops listening: connects are refused."""
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._sockets = self._sockets, set()
        if listener is not None:
            listener.close()
        if self._acceptor is not None:
            # Until it returns, its poll() may keep the port bound.
            self._acceptor.join(timeout=5)
            self._acceptor = None
        for sock in sockets:
            _close(sock)

    def close(self) -> None:
        self.cut()
        for thread in self._threads:
            thread.join(timeout=5)

    def _spawn(self, target: object, *args: object) -> threading.Thread:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        self._threads.append(thread)
        thread.start()
        return thread

    def _accept(self, listener: socket.socket) -> None:
        while True:
            with self._lock:
                if self._listener is not listener:
                    return
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            try:
                upstream = self._connect_upstream()
            except OSError:
                _close(client)
                continue
            with self._lock:
                if self._listener is not listener:
                    _close(client)
                    _close(upstream)
                    return
                self._sockets.update((client, upstream))
                self.connections_accepted += 1
            self._spawn(self._pump, client, upstream)
            self._spawn(self._pump, upstream, client)

    def _connect_upstream(self) -> socket.socket:
        if isinstance(self._target, str):
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.settimeout(5)
            upstream.connect(self._target)
        else:
            upstream = socket.create_connection(self._target, timeout=5)
        upstream.settimeout(None)
        return upstream

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            _close(source)
            _close(sink)
            with self._lock:
                self._sockets.discard(source)
                self._sockets.discard(sink)


def _listen(port: int) -> socket.socket:
    """A listening socket on 127.0.0.1:`port` (0: a free one)."""
    deadline = time.monotonic() + 5
    while True:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind(("127.0.0.1", port))
        except OSError as error:
            listener.close()
            if error.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                raise
            time.sleep(_POLL_SECONDS)
            continue
        listener.listen(128)
        listener.settimeout(_POLL_SECONDS)
        return listener


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
