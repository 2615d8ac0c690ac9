"""pipelines/serve/batcher.py without Ray: concurrent requests meet in one batch, which runs in a
worker thread while the event loop keeps answering."""
from __future__ import annotations

import asyncio
import threading

import pytest

from pipelines.serve.batcher import Batcher


class Gate:
    """A batch function that records its batches and holds the first one until released."""

    def __init__(self) -> None:
        self.batches: list[list] = []
        self.started, self.release = threading.Event(), threading.Event()

    def __call__(self, items: list) -> list:
        self.batches.append(list(items))
        self.started.set()
        if len(self.batches) == 1:
            assert self.release.wait(10)
        if "boom" in items:
            raise RuntimeError("boom")
        return [f"done {item}" for item in items]


def test_requests_that_arrive_while_a_batch_runs_become_the_next_batch_together():
    async def scenario():
        gate = Gate()
        batcher = Batcher(gate, max_batch_size=4, wait_s=0)
        first = asyncio.create_task(batcher.submit("a"))
        await asyncio.to_thread(gate.started.wait, 10)
        later = [asyncio.create_task(batcher.submit(x)) for x in "bcdef"]
        ticks = 0
        for _ in range(5):  # the event loop runs while the first batch blocks its thread
            await asyncio.sleep(0.01)
            ticks += 1
        assert ticks == 5 and not first.done()
        gate.release.set()
        results = await asyncio.gather(first, *later)
        return gate.batches, results

    batches, results = asyncio.run(scenario())
    assert batches == [["a"], ["b", "c", "d", "e"], ["f"]]  # up to max_batch_size, in arrival order
    assert results == [f"done {x}" for x in "abcdef"]


def test_a_cancelled_request_leaves_its_batch_and_an_error_reaches_every_caller_of_its_batch():
    async def scenario():
        gate = Gate()
        batcher = Batcher(gate, max_batch_size=8, wait_s=0)
        first = asyncio.create_task(batcher.submit("a"))
        await asyncio.to_thread(gate.started.wait, 10)
        gone, boom, other = (asyncio.create_task(batcher.submit(x)) for x in ("gone", "boom", "x"))
        await asyncio.sleep(0.01)
        gone.cancel()
        gate.release.set()
        assert await first == "done a"
        for task in (boom, other):
            with pytest.raises(RuntimeError, match="boom"):
                await task
        assert await batcher.submit("y") == "done y"  # the worker survives a failed batch
        return gate.batches

    assert asyncio.run(scenario()) == [["a"], ["boom", "x"], ["y"]]


def test_a_partial_batch_waits_for_company():
    async def scenario():
        seen = []
        batcher = Batcher(lambda items: seen.append(items) or items, max_batch_size=3, wait_s=0.2)
        first = asyncio.create_task(batcher.submit(1))
        await asyncio.sleep(0.02)
        await asyncio.gather(first, batcher.submit(2))
        return seen

    assert asyncio.run(scenario()) == [[1, 2]]
