"""Keep the garbage collector off the startup heap.

A long-running webhookd process holds a few hundred thousand objects created at startup
(modules, FastAPI's routes and models, SQLAlchemy's mappers and compiled statements) that
live as long as the process. CPython's full (oldest-generation) collection walks all of
them each time, pausing the event loop. Moving them to the permanent generation once
startup is done (``gc.freeze``) spares them; garbage created after startup is still
collected as usual. What this bought is in docs/BENCHMARKS.md.
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> None:
    """Collect what startup left behind, then exempt the survivors from future collections."""
    gc.collect()
    gc.freeze()
