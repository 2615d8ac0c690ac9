"""Batcher: concurrent requests meet in batches that run one at a time in a worker thread (no Ray here).

    submit(item) ... submit(item)  ->  queue  ->  run([item, ...]) in a thread  ->  one result each

While a batch runs in its thread, the event loop stays free: the cheap routes (/v1/model, /v1/ready)
answer at once, and the requests that arrive meanwhile wait in the queue, unread, to become the next
batch together (up to max_batch_size). Serve's @serve.batch would form a batch of whatever has
arrived each time its wait ends, even while one runs: with the work in a thread, that makes many
small batches queued behind the running one, and blocking the event loop instead stalls every route.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


class Batcher:
    """`await submit(item)` -> the item's result from `run(items) -> results` (blocking, one result
    per item, run in a worker thread one batch at a time). `lock` is held while a batch runs: take it
    to change what `run` uses between batches."""

    def __init__(self, run: Callable[[list[Any]], list[Any]], max_batch_size: int, wait_s: float) -> None:
        if max_batch_size < 1 or wait_s < 0:
            raise ValueError("max_batch_size must be >= 1 and wait_s >= 0")
        self.run, self.max_batch_size, self.wait_s = run, max_batch_size, wait_s
        self.lock = asyncio.Lock()
        self._queue: list[tuple[Any, asyncio.Future]] = []
        self._arrived = asyncio.Event()
        self._worker: asyncio.Task | None = None

    async def submit(self, item: Any) -> Any:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.append((item, future))
        self._arrived.set()
        if self._worker is None:
            self._worker = loop.create_task(self._work())
        return await future  # cancelled with the caller: its item is dropped if not yet taken

    def _take(self) -> list[tuple[Any, asyncio.Future]]:
        self._queue = [(item, f) for item, f in self._queue if not f.cancelled()]
        batch, self._queue = self._queue[:self.max_batch_size], self._queue[self.max_batch_size:]
        if not self._queue:
            self._arrived.clear()
        return batch

    async def _work(self) -> None:
        while True:
            await self._arrived.wait()
            if len(self._queue) < self.max_batch_size and self.wait_s > 0:
                await asyncio.sleep(self.wait_s)  # a partial batch waits a moment for company
            batch = self._take()
            if not batch:
                continue
            async with self.lock:
                try:
                    results = await asyncio.to_thread(self.run, [item for item, _ in batch])
                    if len(results) != len(batch):
                        raise RuntimeError(f"a batch of {len(batch)} items got {len(results)} results")
                except Exception as exc:  # noqa: BLE001 - every caller of the batch gets the error
                    results = [exc] * len(batch)
            for (_, future), result in zip(batch, results):
                if future.done():  # cancelled meanwhile
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)
