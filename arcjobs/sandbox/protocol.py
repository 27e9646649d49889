"""Length-prefixed JSON frames: the only format that crosses a process boundary in the sandbox.

Executor ↔ worker and worker ↔ program child all speak this. JSON (never pickle) means a
message can carry data and nothing else: a hostile program that writes bytes into its result
pipe can at most describe its own outputs, which the worker then checks like any others.
"""

from __future__ import annotations

import builtins
import json
import os
import struct
from typing import Any

# Private references (see `arcjobs.sandbox.outputs`): the program's process reports through
# these after the program ran, whatever it did to builtins, `os` or `json`.
__builtins__ = dict(vars(builtins))
_dumps, _write = json.dumps, os.write

HEADER = struct.Struct(">I")
MAX_FRAME = 64 * 1024 * 1024  # a 10 MB source fits; anything bigger is a broken peer


class ProtocolError(Exception):
    """The peer sent something that is not a well-formed frame."""


def encode(message: Any) -> bytes:
    body = _dumps(message, separators=(",", ":")).encode()
    return HEADER.pack(len(body)) + body


def encode_job(job: dict[str, Any]) -> bytes:
    """A job frame; `inputs_json` (already JSON text, shared by every program of a task) is
    spliced in as `inputs` rather than encoded again for each of its programs."""
    if "inputs_json" not in job:
        return encode(job)
    rest = {k: v for k, v in job.items() if k != "inputs_json"}
    body = (
        _dumps(rest, separators=(",", ":"))[:-1] + ',"inputs":' + job["inputs_json"] + "}"
    ).encode()
    return HEADER.pack(len(body)) + body


def write_frame(fd: int, message: Any) -> None:
    """Write one frame to a blocking fd, however many writes the pipe needs."""
    view = memoryview(encode(message))
    while view:
        view = view[_write(fd, view) :]


class FrameReader:
    """Incremental decoder: feed bytes as they arrive, take whole messages out."""

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self.buffer = bytearray()
        self.max_frame = max_frame
        self.pending: list[Any] = []

    def feed(self, data: bytes) -> list[Any]:
        self.buffer += data
        messages = []
        while len(self.buffer) >= HEADER.size:
            (size,) = HEADER.unpack_from(self.buffer)
            if size > self.max_frame:
                raise ProtocolError(f"frame of {size} bytes exceeds {self.max_frame}")
            if len(self.buffer) < HEADER.size + size:
                break
            body = bytes(self.buffer[HEADER.size : HEADER.size + size])
            del self.buffer[: HEADER.size + size]
            try:
                messages.append(json.loads(body))
            except ValueError as e:
                raise ProtocolError(f"frame is not JSON: {e}") from None
        return messages

    def next(self, fd: int) -> Any | None:
        """The next whole message from a blocking fd (keeping any bytes past it); None at EOF."""
        while not self.pending:
            data = os.read(fd, 1 << 16)
            if not data:
                return None
            self.pending.extend(self.feed(data))
        return self.pending.pop(0)
