"""Issue 13: /docs works offline and under a strict CSP: Swagger UI's files come from the
package, no page refers to another host."""

from __future__ import annotations

import re


def test_docs_load_nothing_from_another_host(server) -> None:
    with server.client() as client:
        page = client.get("/docs")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        urls = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]|url: ?['"]([^'"]+)['"]""", page.text)
        found = [u for pair in urls for u in pair if u]
        assert found and not [u for u in found if "://" in u or u.startswith("//")], found
        assert "cdn" not in page.text.lower()
        for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"):
            response = client.get(f"/static/swagger/{asset}")
            assert response.status_code == 200 and len(response.content) > 100
        assert client.get("/redoc").status_code == 404  # not offered (it would need a CDN)
        assert client.get("/openapi.json").status_code == 200
