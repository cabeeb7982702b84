"""The routing tables are built while the server starts, not by its first requests
(app.warm_routes): FastAPI builds an included router's routes on the first request that
walks it, ~170 ms with the event loop blocked. Counted where FastAPI builds them."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.routing import _EffectiveRouteContext

import webhookd.app
from tests.fixtures.server import running_server

# One path per group of routers: the tenant API, the Svix API, the console, the portal,
# the docs, a path that matches nothing.
PATHS = (
    "/api/v1/events",
    "/api/v1/app",
    "/console/",
    "/portal/",
    "/docs",
    "/no/such/page",
)


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths of the routes FastAPI builds, in order."""
    paths: list[str] = []
    original = _EffectiveRouteContext.from_api_route.__func__  # type: ignore[attr-defined]

    def counting(cls: type, **kwargs: Any) -> Any:
        paths.append(kwargs["original_route"].path)
        return original(cls, **kwargs)

    monkeypatch.setattr(_EffectiveRouteContext, "from_api_route", classmethod(counting))
    return paths


def _first_requests(server: Any) -> None:
    with server.client() as client:
        for path in PATHS:
            assert client.get(path).status_code < 500


def test_requests_after_start_build_no_route(tmp_path_factory, built: list[str]) -> None:
    with running_server(tmp_path_factory) as server:
        at_start = len(built)
        assert at_start > 100  # every API route: the tenant API, Svix's, console, portal
        _first_requests(server)
        assert len(built) == at_start


def test_without_the_warm_up_the_first_requests_build_them(
    tmp_path_factory, built: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the warm-up spares: FastAPI still builds routes lazily."""

    async def nothing(app: Any) -> None:
        return None

    monkeypatch.setattr(webhookd.app, "warm_routes", nothing)
    with running_server(tmp_path_factory) as server:
        at_start = len(built)
        _first_requests(server)
        assert len(built) - at_start > 100
