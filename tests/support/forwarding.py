"""A TCP forwarder from an address containers can reach (the gateway address of a Docker network
a test made) to a server of the test cluster on loopback: how containers on a user-defined
network, as compose runs them, reach the test cluster's Redis shards and MariaDB."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class _Forwarder:
    def __init__(self, listener: socket.socket, target_port: int) -> None:
        self.listener, self.target_port = listener, target_port
        self.stop = threading.Event()
        self.open: set[socket.socket] = set()
        self.threads: list[threading.Thread] = []
        self.lock = threading.Lock()

    def serve(self) -> None:
        while not self.stop.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._connection, args=(client,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _connection(self, client: socket.socket) -> None:
        with client:
            client.settimeout(None)
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                return
            with upstream:
                upstream.settimeout(None)
                with self.lock:
                    self.open.update((client, upstream))
                back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
                back.start()
                _pump(client, upstream)
                back.join(timeout=30)
                with self.lock:
                    self.open.difference_update((client, upstream))

    def close(self) -> None:
        self.stop.set()
        with self.lock:
            for sock in self.open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        for thread in self.threads:
            thread.join(timeout=5)


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


@contextmanager
def forward(listen_host: str, target_port: int) -> Iterator[int]:
    """Listens on listen_host (a free port, yielded) and forwards to 127.0.0.1:target_port."""
    listener = socket.socket()
    listener.bind((listen_host, 0))
    listener.listen(64)
    listener.settimeout(0.2)
    forwarder = _Forwarder(listener, target_port)
    thread = threading.Thread(target=forwarder.serve, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        forwarder.stop.set()
        thread.join(timeout=5)
        listener.close()
        forwarder.close()
