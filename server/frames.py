"""Length-prefixed pickle frames between the server and its search processes (a socketpair
the server made: both ends are this program, so pickle is safe here and nowhere else)."""

from __future__ import annotations

import pickle
import struct

HEADER = struct.Struct("<I")
HELLO = "pith-search-process-ready"  # process -> server, once its collections are open
OPEN = "open"  # server -> process, first: ("open", [collection name, ...], settings)
METRICS = "metrics"  # process -> server: ("metrics", [(status, seconds), ...]) of its own answers
BACK_MAX = 1 << 17  # bytes a connection handed back may carry (one SOCK_SEQPACKET message)


def frame(message: object) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(data)) + data


class FrameReader:
    """Bytes in as they arrive, whole messages out."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[object]:
        buf = self._buf
        buf += data
        out, pos = [], 0
        while len(buf) - pos >= HEADER.size:
            (size,) = HEADER.unpack_from(buf, pos)
            end = pos + HEADER.size + size
            if len(buf) < end:
                break
            out.append(pickle.loads(buf[pos + HEADER.size : end]))
            pos = end
        del buf[:pos]
        return out
