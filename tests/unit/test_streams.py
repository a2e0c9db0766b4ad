"""StreamObserver: reading an SSE stream as it passes, whatever the network chunking."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from llmops.gateway.streams import StreamObserver


def _event(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data, ensure_ascii=False).encode() + b"\n\n"


def _chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
    return _event({"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": choices, **extra})


USAGE = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}

CHAT_STREAM = b"".join(
    [
        b": keep-alive comment\n\n",
        _chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]),
        _chunk([{"index": 0, "delta": {"content": "Héllo"}, "finish_reason": None}]),
        _chunk([{"index": 0, "delta": {"content": ", wörld 🎉"}, "finish_reason": None}]),
        _chunk([{"index": 1, "delta": {"role": "assistant", "content": "second"}, "finish_reason": None}]),
        _chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}]),
        _chunk([{"index": 1, "delta": {}, "finish_reason": "length"}]),
        _chunk([], usage=USAGE),
        b"data: [DONE]\n\n",
    ]
)


def _observe(pieces: list[bytes], kind: str = "chat") -> StreamObserver:
    observer = StreamObserver(kind)
    for piece in pieces:
        observer.feed(piece)
    return observer


def _summary(observer: StreamObserver) -> tuple[Any, ...]:
    return (
        observer.all_texts(),
        observer.finish_reasons,
        observer.usage,
        observer.done,
        observer.tool_calls,
        observer.error,
    )


EXPECTED = (
    ["Héllo, wörld 🎉", "second"],
    {0: "stop", 1: "length"},
    USAGE,
    True,
    {},
    None,
)


def test_whole_stream_in_one_chunk() -> None:
    observer = _observe([CHAT_STREAM])
    assert _summary(observer) == EXPECTED
    assert observer.text() == "Héllo, wörld 🎉"
    assert observer.text(1) == "second"
    assert observer.text(5) == ""


@pytest.mark.parametrize("line_ending", [b"\n", b"\r\n"])
def test_split_at_every_position(line_ending: bytes) -> None:
    stream = CHAT_STREAM.replace(b"\n", line_ending)
    for cut in range(len(stream) + 1):
        observer = _observe([stream[:cut], stream[cut:]])
        assert _summary(observer) == EXPECTED, f"split at byte {cut}: {stream[:cut][-20:]!r}"


@pytest.mark.parametrize("line_ending", [b"\n", b"\r\n"])
def test_one_byte_at_a_time(line_ending: bytes) -> None:
    stream = CHAT_STREAM.replace(b"\n", line_ending)
    assert _summary(_observe([stream[i : i + 1] for i in range(len(stream))])) == EXPECTED


def test_random_chunkings() -> None:
    chooser = random.Random(1234)
    for line_ending in (b"\n", b"\r\n"):
        stream = CHAT_STREAM.replace(b"\n", line_ending)
        for _ in range(300):
            cuts = sorted(chooser.sample(range(1, len(stream)), chooser.randint(1, 12)))
            pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
            assert b"".join(pieces) == stream
            assert _summary(_observe(pieces)) == EXPECTED, cuts


def test_incomplete_last_event_is_not_read() -> None:
    observer = _observe([CHAT_STREAM[: CHAT_STREAM.index(b"data: [DONE]") + 12]])
    assert observer.done is False
    observer.feed(b"\n\n")
    assert observer.done is True


def test_data_without_space_and_comments() -> None:
    observer = _observe(
        [
            b": ping\n\n",
            b"event: message\nid: 1\n",
            b'data:{"choices":[{"index":0,"delta":{"content":"x"}}]}\n\n',
            b"data:[DONE]\n\n",
        ]
    )
    assert observer.text() == "x"
    assert observer.done


def test_tool_call_deltas_are_accumulated() -> None:
    def call_delta(**call: Any) -> bytes:
        return _chunk([{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}])

    stream = [
        _chunk([{"index": 0, "delta": {"role": "assistant", "content": None}, "finish_reason": None}]),
        call_delta(index=0, id="call_a", type="function", function={"name": "get_", "arguments": ""}),
        call_delta(index=0, function={"name": "weather", "arguments": '{"ci'}),
        call_delta(index=1, id="call_b", type="function", function={"name": "time", "arguments": "{}"}),
        call_delta(index=0, function={"arguments": 'ty": "Paris"}'}),
        _chunk([{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]),
        b"data: [DONE]\n\n",
    ]
    observer = StreamObserver("chat")
    assert observer.first_content_at is None
    for piece in stream[:2]:
        observer.feed(piece)
    assert observer.first_content_at is not None  # a tool call counts as the first content
    for piece in stream[2:]:
        observer.feed(piece)
    assert observer.tool_calls == {
        (0, 0): {"id": "call_a", "name": "get_weather", "arguments": '{"city": "Paris"}'},
        (0, 1): {"id": "call_b", "name": "time", "arguments": "{}"},
    }
    assert observer.finish_reasons == {0: "tool_calls"}
    assert observer.all_texts() == []
    assert observer.done


def test_completion_kind_reads_text() -> None:
    def piece(text: str, finish: str | None = None) -> bytes:
        return _event(
            {"object": "text_completion", "choices": [{"index": 0, "text": text, "finish_reason": finish}]}
        )

    observer = _observe(
        [piece("Once"), piece(" upon"), piece("", "length"), b"data: [DONE]\n\n"], "completion"
    )
    assert observer.text() == "Once upon"
    assert observer.finish_reasons == {0: "length"}
    assert observer.first_content_at is not None
    # a chat observer ignores `text`, a completion observer ignores `delta`
    assert _observe([piece("ignored")], "chat").all_texts() == []
    delta = _chunk([{"index": 0, "delta": {"content": "ignored"}}])
    assert _observe([delta], "completion").all_texts() == []


def test_usage_chunk() -> None:
    observer = _observe([_chunk([{"index": 0, "delta": {"content": "a"}}]), _chunk([], usage=USAGE)])
    assert observer.usage == USAGE
    observer.feed(_chunk([{"index": 0, "delta": {"content": "b"}}], usage=None))
    assert observer.usage == USAGE  # usage: null on ordinary chunks does not erase it
    assert observer.text() == "ab"


def test_error_event() -> None:
    error = {"message": "upstream exploded", "type": "server_error", "param": None, "code": None}
    observer = _observe([_chunk([{"index": 0, "delta": {"content": "par"}}]), _event({"error": error})])
    assert observer.error == error
    assert observer.text() == "par"
    assert observer.done is False


def test_first_content_at_only_on_content() -> None:
    observer = StreamObserver("chat")
    observer.feed(_chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}}]))
    observer.feed(_chunk([{"index": 0, "delta": {"content": None}}]))
    observer.feed(_chunk([], usage=USAGE))
    observer.feed(b": comment\n\n")
    assert observer.first_content_at is None
    observer.feed(_chunk([{"index": 0, "delta": {"content": "first"}}]))
    first = observer.first_content_at
    assert first is not None
    observer.feed(_chunk([{"index": 0, "delta": {"content": "second"}}]))
    assert observer.first_content_at == first


def test_garbage_lines_are_ignored() -> None:
    observer = _observe(
        [
            b"data: {not json\n\n",
            b"data: [1, 2, 3]\n\n",
            b'data: "a string"\n\n',
            b"retry: 1000\n\n",
            _chunk([{"index": 0, "delta": {"content": "ok"}}]),
        ]
    )
    assert observer.text() == "ok"
    assert observer.error is None


@pytest.mark.parametrize(
    "message",
    [
        {"choices": [None]},
        {"choices": "abc"},
        {"choices": {"index": 0}},
        {"choices": [{"index": 0, "delta": "oops"}]},
        {"choices": [{"index": 0, "delta": {"content": 5}}]},
        {"choices": [{"index": 0, "delta": {"content": ["x"]}}]},
        {"choices": [{"index": None, "delta": {"content": "x"}}]},
        {"choices": [{"index": "1", "delta": {"content": "x"}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [None]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": "nope"}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"function": "f"}]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"function": {"name": 1, "arguments": {}}}]}}]},
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {"index": None, "id": 7, "function": {"name": "f"}},
                            {"index": 1, "function": {"name": "g"}},
                        ]
                    },
                }
            ]
        },
        {"choices": [{"index": 0, "text": 5, "finish_reason": ["stop"]}]},
    ],
)
def test_malformed_upstream_chunks_never_raise(message: dict[str, Any]) -> None:
    """The observer only reads a stream the client receives anyway: odd chunks must not break it."""
    for kind in ("chat", "completion"):
        observer = StreamObserver(kind)
        observer.feed(_chunk([{"index": 0, "delta": {"content": "a"}, "text": "a"}]))
        observer.feed(_event(message))
        observer.feed(_chunk([{"index": 0, "delta": {"content": "b"}, "text": "b"}]))
        observer.feed(b"data: [DONE]\n\n")
        texts = observer.all_texts()
        assert observer.text() in ("ab", "axb")
        assert all(isinstance(text, str) for text in texts)
        assert all(isinstance(reason, str) for reason in observer.finish_reasons.values())
        assert all(isinstance(a, int) and isinstance(b, int) for a, b in observer.tool_calls)  # sortable
        for call in observer.tool_calls.values():
            assert call["id"] is None or isinstance(call["id"], str)
            assert isinstance(call["name"], str)
            assert isinstance(call["arguments"], str)
        assert observer.done
