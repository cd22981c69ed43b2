"""The sandbox's listening socket: its connections answer without Nagle's delay."""

from __future__ import annotations

import asyncio
import socket
from concurrent.futures import ThreadPoolExecutor

from toolkit.sandbox.server import _bind


def test_connections_on_the_sandbox_socket_get_tcp_nodelay() -> None:
    """asyncio (under uvicorn) sets TCP_NODELAY only on a socket made with IPPROTO_TCP; without it a
    small answer (a task id, a status read) waited for the client's delayed ACK, ~40 ms each."""

    async def accepted_nodelay() -> int:
        seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                sock = transport.get_extra_info("socket")
                seen.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        listening = _bind("127.0.0.1", 0)
        server = await asyncio.get_running_loop().create_server(Probe, sock=listening)
        try:
            port = listening.getsockname()[1]
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                return await asyncio.wait_for(seen, timeout=30)
            finally:
                writer.close()
        finally:
            server.close()
            await server.wait_closed()

    # a loop of its own on a thread of its own: an earlier test (Playwright's sync API) may leave
    # an event loop running on this one, where asyncio.run() refuses to start
    with ThreadPoolExecutor(max_workers=1) as thread:
        assert thread.submit(asyncio.run, accepted_nodelay()).result(timeout=60) != 0
