"""SQLite's WAL is checkpointed on a thread of the process, never inside a commit.

A checkpoint inside a commit stops the event loop (the connections run inline) while
SQLite copies the WAL into the database file and syncs it: that is what the
``WalCheckpointer`` of ``webhookd.db`` moves off the loop. Until a checkpoint runs, what
was committed lives in the WAL only, so the database file's size tells whether one ran.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from sqlalchemy import text

from tests.fixtures.server import make_settings
from webhookd.db import Database, WalCheckpointer


async def _write_pages(db: Database, rows: int) -> None:
    async with db.write_connection() as conn:
        await conn.execute(text("CREATE TABLE IF NOT EXISTS filler (id INTEGER PRIMARY KEY, b)"))
    for _ in range(0, rows, 500):  # many commits, as the engine makes them
        async with db.write_connection() as conn:
            await conn.execute(
                text("INSERT INTO filler (b) VALUES (:b)"), [{"b": "x" * 1000}] * 500
            )


def test_commits_leave_the_checkpoint_to_the_task(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.db"

    async def scenario() -> None:
        db = Database(make_settings(path))
        async with db.engine.connect() as conn:
            assert (await conn.execute(text("PRAGMA wal_autocheckpoint"))).scalar() == 0
        await _write_pages(db, 6_000)  # ~1,500 pages: past SQLite's automatic 1,000
        # Checked before the task's first round: the commits checkpointed nothing.
        assert path.stat().st_size < 1_000_000
        deadline = time.monotonic() + 10
        while path.stat().st_size < 5_000_000 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert path.stat().st_size >= 5_000_000  # the task copied the WAL in
        async with db.read() as session:
            assert (await session.execute(text("SELECT count(*) FROM filler"))).scalar() == 6_000
        await db.dispose()

    # A long first interval so that the size check above sees the commits' own work.
    original = WalCheckpointer.INTERVAL
    WalCheckpointer.INTERVAL = 2.0
    try:
        asyncio.run(scenario())
    finally:
        WalCheckpointer.INTERVAL = original


def test_the_wal_starts_over_under_a_steady_stream_of_commits(tmp_path: Path) -> None:
    """Commits all the time, each checkpoint overlapping some: the WAL still starts over,
    rather than growing with every write (the file keeps its largest size)."""
    path = tmp_path / "stream.db"
    wal = Path(f"{path}-wal")

    async def scenario() -> None:
        db = Database(make_settings(path))
        checkpointer = db._checkpointer
        assert checkpointer is not None
        checkpointer._interval = 0.05
        async with db.write_connection() as conn:
            await conn.execute(text("CREATE TABLE filler (id INTEGER PRIMARY KEY, b)"))
        for _ in range(150):  # 150 commits of 300 rows of 1 kB: 45 MB written in all
            async with db.write_connection() as conn:
                await conn.execute(
                    text("INSERT INTO filler (b) VALUES (:b)"), [{"b": "x" * 1000}] * 300
                )
            await asyncio.sleep(0.001)  # the checkpoints run beside the next commits
        assert checkpointer.checkpoints > 0
        assert wal.stat().st_size < 25_000_000
        await db.dispose()

    asyncio.run(scenario())


def test_the_task_waits_for_a_file_that_does_not_exist_yet(tmp_path: Path) -> None:
    path = tmp_path / "later.db"

    async def scenario() -> None:
        checkpointer = WalCheckpointer(str(path), asyncio.Lock(), interval=0.01)
        checkpointer.start()
        await asyncio.sleep(0.1)
        assert not path.exists()  # it never creates the file
        assert checkpointer.checkpoints == 0
        await checkpointer.stop()

    asyncio.run(scenario())
