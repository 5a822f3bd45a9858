"""RPyC frames with bounds: what a peer may make the scheduler read and decompress.

rpyc's :class:`rpyc.core.channel.Channel` reads a frame of the length its header
claims (up to 4 GiB) and inflates a compressed one whole: one 1.5 MB zlib frame of
1.5 GB of zeros took a scheduler to 2 GB RSS. The server reads its peers' frames
through :class:`BoundedChannel`: a frame may claim at most :data:`MAX_FRAME` bytes and
inflate to at most :data:`MAX_DATA` (decompressed in steps that stop at the bound);
past either the connection ends (EOFError, which rpyc takes as the peer hanging up)
and a ``control frame refused`` warning says who and why. A control call is a few
hundred bytes; a reply, which goes the other way, is not bounded here.
"""

from __future__ import annotations

import zlib
from typing import Any

from rpyc.core.channel import Channel

MAX_FRAME = 1 << 20  # 1 MiB as sent
MAX_DATA = 8 << 20  # 8 MiB once decompressed


class FrameRefused(EOFError):
    """A frame over the bounds: the connection ends here."""


class BoundedChannel(Channel):
    __slots__ = ()

    def recv(self) -> bytes:
        header = self.stream.read(self.FRAME_HEADER.size)
        length, compressed = self.FRAME_HEADER.unpack(header)
        if length > MAX_FRAME:
            self._refuse(f"a frame of {length} bytes (at most {MAX_FRAME})")
        data = self.stream.read(length + len(self.FLUSHER))[: -len(self.FLUSHER)]
        if compressed:
            inflater = zlib.decompressobj()
            try:
                out = inflater.decompress(data, MAX_DATA)
            except zlib.error as exc:
                self._refuse(f"a compressed frame that is not zlib ({exc})")
            if inflater.unconsumed_tail or not inflater.eof:
                self._refuse(f"a compressed frame of {length} bytes inflating past {MAX_DATA} bytes")
            data = out
        return bytes(data)

    def _refuse(self, what: str) -> Any:
        from supertask.log import get_logger

        try:
            peer = str(self.stream.sock.getpeername())
        except (OSError, AttributeError):
            peer = None
        get_logger("supertask.control.server").warning("control frame refused", peer=peer, frame=what,
                                                       message="the connection is closed")
        self.close()  # now: rpyc's close would otherwise wait a minute on the peer to confirm
        raise FrameRefused(what)
