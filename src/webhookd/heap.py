"""Keep the garbage collector off the startup heap and out of the requests in flight.

A long-running webhookd process holds a few hundred thousand objects created at startup
(modules, FastAPI's routes and models, SQLAlchemy's mappers and compiled statements) that
live as long as the process. CPython's full (oldest-generation) collection walks all of
them each time, pausing the event loop. Moving them to the permanent generation once
startup is done (``gc.freeze``) spares them; garbage created after startup is still
collected as usual.

CPython's young collection runs whenever 700 more container objects are alive than at the
last one. Under load that happens in the middle of every burst of work: the deliveries and
requests in flight at that instant survive it, get promoted, and make the full collection
run again and again over objects that are about to die anyway (every 1.6 s at 1,000
deliveries/s, 10-25 ms each, collecting nothing). Almost everything webhookd allocates is
freed by reference counting as soon as its request or attempt ends, so the young threshold
is raised: the collector still runs, for the rare reference cycle, but not in every burst.
What both bought is in docs/BENCHMARKS.md and docs/RELIABILITY.md.
"""

from __future__ import annotations

import gc

# Young-generation threshold: container objects allocated (net of those freed) between
# two young collections. CPython's default is 700; the older generations keep theirs.
YOUNG_THRESHOLD = 20_000


def freeze_startup_heap() -> None:
    """Collect what startup left behind, exempt the survivors from future collections,
    and let the young generation grow before it is collected."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
