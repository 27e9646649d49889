"""The frame protocol between executor, worker and program: JSON only, length-prefixed."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from arcjobs.sandbox.protocol import HEADER, FrameReader, ProtocolError, encode, encode_job

pytestmark = pytest.mark.unit

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(st.lists(json_values, min_size=1, max_size=5), st.integers(1, 7))
def test_frames_survive_any_chunking(messages, chunk) -> None:
    data = b"".join(encode(m) for m in messages)
    reader, got = FrameReader(), []
    for i in range(0, len(data), chunk):
        got += reader.feed(data[i : i + chunk])
    assert got == messages


def test_spliced_inputs_decode_like_encoded_ones() -> None:
    inputs = [[[1, 2], [3, 4]], [[0]]]
    job = {"code": "x = '\"}'", "seed": 3, "limits": {"timeout_s": 1.0}}
    spliced = encode_job({**job, "inputs_json": json.dumps(inputs)})
    assert FrameReader().feed(spliced) == [{**job, "inputs": inputs}]
    assert encode_job({**job, "inputs": inputs}) == encode({**job, "inputs": inputs})


def test_oversized_and_non_json_frames_are_refused() -> None:
    with pytest.raises(ProtocolError):
        FrameReader(max_frame=10).feed(HEADER.pack(11) + b"x" * 11)
    with pytest.raises(ProtocolError):
        FrameReader().feed(HEADER.pack(3) + b"{x}")
