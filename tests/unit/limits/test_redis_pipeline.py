"""The Redis pipeline of the limits backend, on the real Redis of LLMOPS_TEST_REDIS_URL: batches,
replies in order, a script Redis forgot, a command error, and a connection that fails."""

from __future__ import annotations

import asyncio
import hashlib
import uuid

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from limits_support import redis_url
from llmops.limits.redis_pipeline import Pipeline, command


async def test_concurrent_calls_share_round_trips_and_get_their_own_replies() -> None:
    client = Redis.from_url(redis_url())
    pipeline = Pipeline(client, [])
    try:
        replies = await asyncio.gather(*(pipeline.call(command(["ECHO", f"n{i}"])) for i in range(100)))
        assert replies == [f"n{i}".encode() for i in range(100)]
    finally:
        await pipeline.aclose()
        await client.aclose()


async def test_a_script_redis_does_not_know_is_loaded_and_sent_again() -> None:
    client = Redis.from_url(redis_url())
    marker = uuid.uuid4().hex
    script = f"return '{marker}'"
    sha = hashlib.sha1(script.encode()).hexdigest()
    pipeline = Pipeline(client, [script])
    pipeline._loaded = True  # as after a Redis restart: we believe it is there, Redis does not know it
    try:
        assert await pipeline.call(command(["EVALSHA", sha, 0])) == marker.encode()
    finally:
        await pipeline.aclose()
        await client.aclose()


async def test_one_failing_command_fails_alone() -> None:
    client = Redis.from_url(redis_url())
    pipeline = Pipeline(client, [])
    try:
        good = pipeline.call(command(["ECHO", "fine"]))
        bad = pipeline.call(command(["NOSUCHCOMMAND"]))
        results = await asyncio.gather(good, bad, return_exceptions=True)
        assert results[0] == b"fine"
        assert isinstance(results[1], ResponseError)
        assert await pipeline.call(command(["ECHO", "still fine"])) == b"still fine"
    finally:
        await pipeline.aclose()
        await client.aclose()


async def test_settlements_go_out_on_their_own_and_are_drained() -> None:
    client = Redis.from_url(redis_url())
    pipeline = Pipeline(client, [])
    got: list[object] = []
    try:
        for i in range(3):
            pipeline.submit(command(["ECHO", f"s{i}"]), got.append)
        await asyncio.sleep(0.05)  # nothing else comes: they leave after the linger
        assert got == [b"s0", b"s1", b"s2"]
        pipeline.submit(command(["ECHO", "last"]), got.append)
        await pipeline.drained()
        assert got[-1] == b"last"
    finally:
        await pipeline.aclose()
        await client.aclose()


async def test_an_unreachable_redis_fails_every_command_of_the_batch() -> None:
    client = Redis.from_url("redis://127.0.0.1:1/0")
    pipeline = Pipeline(client, [])
    try:
        results = await asyncio.gather(
            *(pipeline.call(command(["ECHO", "x"])) for _ in range(3)), return_exceptions=True
        )
        assert all(isinstance(result, RedisConnectionError | OSError) for result in results)
        with pytest.raises((RedisConnectionError, OSError)):
            await pipeline.call(command(["ECHO", "x"]))
    finally:
        await pipeline.aclose()
        await client.aclose()
