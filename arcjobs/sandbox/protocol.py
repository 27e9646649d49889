"""Length-prefixed frames: the only format that crosses a process boundary in the sandbox.

Executor ↔ worker and worker ↔ program child all speak this. A frame is a JSON message
plus an optional blob of raw bytes: grid cells (`arcjobs.sandbox.grids`), so that no grid
is ever spelled out in JSON, nor decoded and encoded again by the worker that passes a
job on. JSON and bytes (never pickle) mean a message carries data and nothing else: a
hostile program that writes into its result pipe can at most describe its own outputs,
which the worker then checks like any others.
"""

from __future__ import annotations

import builtins
import json
import os
import struct
from typing import Any, NamedTuple

from arcjobs.sandbox.grids import Packed

# Private references (see `arcjobs.sandbox.outputs`): the program's process reports through
# these after the program ran, whatever it did to builtins, `os` or `json`.
__builtins__ = dict(vars(builtins))
_dumps, _loads, _write = json.dumps, json.loads, os.write

HEADER = struct.Struct(">II")  # sizes of the JSON message and of the blob after it
MAX_FRAME = 64 * 1024 * 1024  # a 10 MB source fits; anything bigger is a broken peer


class ProtocolError(Exception):
    """The peer sent something that is not a well-formed frame."""


class Frame(NamedTuple):
    message: Any
    blob: bytes
    raw: bytes  # the whole frame as it arrived, to pass on unchanged


def encode(message: Any, blob: bytes = b"") -> bytes:
    body = _dumps(message, separators=(",", ":")).encode()
    return HEADER.pack(len(body), len(blob)) + body + blob


def encode_packed(message: dict[str, Any], key: str) -> bytes:
    """A frame of `message` whose `key` (a `Packed` or None) travels as shapes + blob."""
    packed = message[key]
    head = {k: v for k, v in message.items() if k != key}
    head["shapes"] = None if packed is None else packed.shapes
    return encode(head, b"" if packed is None else packed.blob)


def decode_packed(frame: Frame, key: str) -> Any:
    """The message of a frame made by `encode_packed`, `key` a `Packed` again (or None).
    A message that is not a dict stays as it is: `verdict.checked` refuses it."""
    message = frame.message
    if isinstance(message, dict):
        shapes = message.pop("shapes", None)
        message[key] = None if shapes is None else Packed(shapes, frame.blob)
    return message


def write_frame(fd: int, message: Any) -> None:
    write_raw(fd, encode(message))


def write_raw(fd: int, data: bytes) -> None:
    """Write encoded frames to a blocking fd, however many writes the pipe needs."""
    view = memoryview(data)
    while view:
        view = view[_write(fd, view) :]


class FrameReader:
    """Incremental decoder: feed bytes as they arrive, take whole frames out."""

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self.buffer = bytearray()
        self.max_frame = max_frame
        self.pending: list[Frame] = []

    def feed(self, data: bytes) -> list[Frame]:
        self.buffer += data
        frames = []
        while len(self.buffer) >= HEADER.size:
            size, blob_size = HEADER.unpack_from(self.buffer)
            total = HEADER.size + size + blob_size
            if size + blob_size > self.max_frame:
                raise ProtocolError(f"frame of {size + blob_size} bytes exceeds {self.max_frame}")
            if len(self.buffer) < total:
                break
            raw = bytes(self.buffer[:total])
            del self.buffer[:total]
            try:
                message = _loads(raw[HEADER.size : HEADER.size + size])
            except ValueError as e:
                raise ProtocolError(f"frame is not JSON: {e}") from None
            frames.append(Frame(message, raw[HEADER.size + size :], raw))
        return frames

    def next(self, fd: int) -> Frame | None:
        """The next whole frame from a blocking fd (keeping any bytes past it); None at EOF."""
        while not self.pending:
            data = os.read(fd, 1 << 16)
            if not data:
                return None
            self.pending.extend(self.feed(data))
        return self.pending.pop(0)
