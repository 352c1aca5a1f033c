"""Baseline for the SIP benchmark: a bare uvloop datagram handler answering every INVITE with a
canned 302 (copying only what a 302 must copy), and ignoring ACKs. No transactions, no
attribution: the ceiling of Python + uvloop on this machine."""

from __future__ import annotations

import asyncio
import sys

import uvloop

COPIED = (b"via:", b"from:", b"to:", b"call-id:", b"cseq:")


class Bare(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if not data.startswith(b"INVITE"):
            return
        head = data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
        lines = [b"SIP/2.0 302 Moved Temporarily"]
        for line in head[1:]:
            low = line[:9].lower()
            if low.startswith(COPIED):
                lines.append(line + (b";tag=bare" if low.startswith(b"to:") else b""))
        lines += [b"Contact: <sip:+18005550100@trunk.example>", b"Content-Length: 0", b"", b""]
        self.transport.sendto(b"\r\n".join(lines), addr)  # type: ignore[attr-defined]


async def main() -> None:
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(Bare, local_addr=("127.0.0.1", int(sys.argv[1])))
    await asyncio.Event().wait()


if __name__ == "__main__":
    uvloop.run(main())
