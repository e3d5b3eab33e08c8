"""Forward TCP from the host's loopback into the test bed's network namespace.

Why: the real-node bed runs its API server inside its own network namespace (so that
kube-proxy, CNI and NetworkPolicy rules never touch the machine's network), but tests,
kubectl and helm run on the host. This process opens its listening sockets in the host
namespace first, then moves itself into the bed's namespace: every connection it makes
from then on starts inside the bed. Bytes are copied both ways unchanged (TLS stays
end to end).

Usage: netns_forward.py NETNS PORT[:BEDPORT]...   (host 127.0.0.1:PORT -> bed 127.0.0.1:BEDPORT)
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            if writer.can_write_eof():
                writer.write_eof()


def _handler(port: int):  # type: ignore[no-untyped-def]
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        for w in (writer, up_writer):
            w.close()

    return handle


async def _serve(listeners: list[tuple[socket.socket, int]]) -> None:
    servers = [await asyncio.start_server(_handler(port), sock=sock) for sock, port in listeners]
    await asyncio.gather(*(s.serve_forever() for s in servers))


def main(argv: list[str]) -> int:
    netns = argv[0]
    listeners = []
    for spec in argv[1:]:
        host_port, _, bed_port = spec.partition(":")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", int(host_port)))
        sock.listen(128)
        listeners.append((sock, int(bed_port or host_port)))
    import realnodes

    realnodes.enter_netns(netns)  # from here on, new sockets belong to the bed's namespace
    asyncio.run(_serve(listeners))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
