"""The background writer: file writes on one thread, in submission order, so the next epoch starts at once."""
from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor

from fashion import artifacts


class Writer:
    """Runs file writes on one background thread, in submission order.

    Status, history, checkpoint and snapshot files all pass through it, so they land in the order they were
    submitted; a failed write is raised on the training thread at the next submit or at ``close``.
    """

    def __init__(self):
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fashion-writer")
        self.pending: list[Future] = []

    def submit(self, fn, *args, **kwargs) -> None:
        done = [f for f in self.pending if f.done()]
        self.pending = [f for f in self.pending if not f.done()]
        for f in done:
            f.result()
        self.pending.append(self.pool.submit(fn, *args, **kwargs))

    def drain(self) -> None:
        pending, self.pending = self.pending, []
        for f in pending:
            f.result()

    def close(self) -> None:
        try:
            self.drain()
        finally:
            self.pool.shutdown(wait=True)


class StatusTicker:
    """Writes status.json at most every few seconds during an epoch so --status and --local show progress."""

    def __init__(self, job_dir, submit=None, every_s: float = 3.0):
        self.job_dir, self.every_s, self.last = job_dir, every_s, 0.0
        self.submit = submit or (lambda fn, *a, **k: fn(*a, **k))

    def __call__(self, force: bool = False, **fields):
        now = time.monotonic()
        if force or now - self.last >= self.every_s:
            self.last = now
            self.submit(artifacts.write_status, self.job_dir, "running", **fields)
