"""The frame protocol between executor, worker and program: length-prefixed JSON + bytes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from arcjobs.sandbox.grids import Packed
from arcjobs.sandbox.protocol import (
    HEADER,
    FrameReader,
    ProtocolError,
    decode_packed,
    encode,
    encode_packed,
)

pytestmark = pytest.mark.unit

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(
    st.lists(st.tuples(json_values, st.binary(max_size=20)), min_size=1, max_size=5),
    st.integers(1, 7),
)
def test_frames_survive_any_chunking(messages, chunk) -> None:
    encoded = [encode(m, blob) for m, blob in messages]
    data = b"".join(encoded)
    reader, got = FrameReader(), []
    for i in range(0, len(data), chunk):
        got += reader.feed(data[i : i + chunk])
    assert [(f.message, f.blob) for f in got] == messages
    assert [f.raw for f in got] == encoded  # what a worker passes on is what it was sent


def test_packed_grids_travel_as_shapes_and_a_blob() -> None:
    inputs = Packed.of([[[1, 2], [3, 4]], [[0]]])
    job = {"code": "x = '\"}'", "seed": 3, "limits": {"timeout_s": 1.0}, "inputs": inputs}
    (frame,) = FrameReader().feed(encode_packed(job, "inputs"))
    assert frame.blob == bytes([1, 2, 3, 4, 0])
    assert frame.message["shapes"] == [[2, 2], [1, 1]]
    assert decode_packed(frame, "inputs") == job
    (none,) = FrameReader().feed(encode_packed({"status": "ok", "outputs": None}, "outputs"))
    assert decode_packed(none, "outputs") == {"status": "ok", "outputs": None}


def test_oversized_and_non_json_frames_are_refused() -> None:
    with pytest.raises(ProtocolError):
        FrameReader(max_frame=10).feed(HEADER.pack(5, 6) + b"x" * 11)
    with pytest.raises(ProtocolError):
        FrameReader().feed(HEADER.pack(3, 0) + b"{x}")
