"""A small fault-injecting TCP proxy (Toxiproxy-style) on asyncio, for tests and benches.

Each accepted connection is, with probability ``reset_rate``, reset: the client's request is read
in part and the connection is closed with an RST (SO_LINGER 0) before any answer, so the client
cannot know whether the server acted. With probability ``latency_rate`` every chunk forwarded in
either direction is delayed by ``latency_s``. Everything else is passed through unchanged. It
runs in its own thread with its own event loop; counts of what it did are in ``stats``.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import threading
from collections import Counter
from contextlib import suppress


class FaultProxy:
    def __init__(
        self,
        listen_port: int,
        target_port: int,
        *,
        reset_rate: float = 0.05,
        latency_rate: float = 0.05,
        latency_s: float = 0.5,
        seed: int = 17,
    ):
        self.listen_port, self.target_port = listen_port, target_port
        self.reset_rate, self.latency_rate, self.latency_s = reset_rate, latency_rate, latency_s
        self.random = random.Random(seed)
        self.stats: Counter[str] = Counter()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.base_events.Server | None = None

    def start(self) -> None:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._serve(), self._loop)
        future.result(timeout=10)

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
                await self._server.wait_closed()

        with suppress(Exception):
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    async def _serve(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.listen_port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats["connections"] += 1
        roll = self.random.random()
        if roll < self.reset_rate:
            self.stats["resets"] += 1
            with suppress(Exception):
                await asyncio.wait_for(reader.read(256), timeout=2)
            _reset(writer)
            return
        delay = self.latency_s if roll < self.reset_rate + self.latency_rate else 0.0
        if delay:
            self.stats["delayed"] += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            self.stats["upstream_refused"] += 1
            _reset(writer)
            return
        await asyncio.gather(
            _pipe(reader, up_writer, delay), _pipe(up_reader, writer, delay), return_exceptions=True
        )


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    try:
        while data := await reader.read(65536):
            if delay:
                await asyncio.sleep(delay)
            writer.write(data)
            await writer.drain()
    finally:
        with suppress(Exception):
            writer.close()


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
