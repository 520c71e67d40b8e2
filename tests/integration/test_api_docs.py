"""The API docs work offline: /docs and /redoc load only this service's own assets, and the
OpenAPI document declares the bearer key scheme (the Authorize button)."""

import re
from html.parser import HTMLParser

import httpx

_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [v for k, v in attrs if k in ("src", "href", "spec-url") and v]


async def test_the_docs_pages_load_only_local_assets_that_answer_with_their_type(
    client: httpx.AsyncClient,
) -> None:
    assets: set[str] = set()
    for page in ("/docs", "/redoc"):
        response = await client.get(page)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert "://" not in response.text and "//cdn" not in response.text, page
        links = _Links()
        links.feed(response.text)
        assert links.urls, page
        assert all(u.startswith("/") and not u.startswith("//") for u in links.urls), links.urls
        assets |= {u for u in links.urls if u != "/openapi.json"}
        assert re.search(r"""['"]/openapi\.json['"]""", response.text), page
    assert {a.rsplit(".", 1)[-1] for a in assets} == {"js", "css", "png"}
    for asset in assets:
        response = await client.get(asset)
        assert response.status_code == 200, asset
        expected = _TYPES["." + asset.rsplit(".", 1)[-1]]
        assert response.headers["content-type"].split(";")[0] == expected, asset
        assert len(response.content) > 1000, asset
    bundle = await client.get(next(a for a in assets if a.endswith("swagger-ui-bundle.js")))
    assert "SwaggerUIBundle" in bundle.text


async def test_the_openapi_document_declares_the_bearer_key_on_every_route_that_needs_one(
    client: httpx.AsyncClient,
) -> None:
    spec = (await client.get("/openapi.json")).json()
    schemes = spec["components"]["securitySchemes"]
    assert {name: (s["type"], s["scheme"]) for name, s in schemes.items()} == {
        "ApiKey": ("http", "bearer")
    }
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            expected: list[dict[str, list[str]]] | None = (
                [{"ApiKey": []}] if path.startswith("/v1/") else None
            )
            assert operation.get("security") == expected, (method, path)
            headers = {p["name"].lower() for p in operation.get("parameters", [])
                       if p["in"] == "header"}
            assert "authorization" not in headers, (method, path)
            if method == "post":
                assert "idempotency-key" in headers, path
