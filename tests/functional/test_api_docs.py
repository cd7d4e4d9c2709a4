"""``GET /docs`` (docs/api.md, "Browsable API reference"): Swagger UI from the packaged bundle, under its own
Content-Security-Policy (this origin only, no inline script or style), not an API operation and never rate limited.
Its rendering in Chromium is e2e/test_api_docs.py."""

from __future__ import annotations

from app.apidocs import bundle_dir
from tests.functional.test_checkout_flow import _path

SCOPES = ("API", "TOKEN", "TOKEN_FAILURES_CLIENT", "TOKEN_FAILURES_IP", "CHECKOUT_SESSION", "CHECKOUT_IP")


def _csp(response) -> dict[str, list[str]]:
    return {name: values for name, *values in
            (part.split() for part in response.headers["Content-Security-Policy"].split(";"))}


def test_docs_page_loads_the_packaged_bundle_under_a_self_only_policy(stack):
    r = stack.http.get("/docs")
    assert r.status_code == 200 and r.mimetype == "text/html"
    html = r.get_data(as_text=True)
    assert 'data-spec-url="/v1/openapi.json"' in html
    assert "<script>" not in html and "<style" not in html and "style=" not in html  # nothing inline
    for url in ("/static/apidocs/swagger-ui-bundle.js", "/static/apidocs/swagger-ui.css", "/static/apidocs-init.js"):
        assert f'"{url}"' in html
        asset = stack.http.get(url)
        assert asset.status_code == 200 and len(asset.get_data()) > 100, url
    assert "http://" not in html.replace('"http://127.0.0.1', "") and "https://" not in html  # no CDN

    policy = _csp(r)
    assert policy["default-src"] == ["'none'"]
    assert policy["script-src"] == ["'self'"] and policy["style-src"] == ["'self'"]
    assert policy["img-src"] == ["'self'", "data:"]
    assert policy["connect-src"] == ["'self'", stack.services.settings.public_base_url.rstrip("/")]
    assert policy["frame-ancestors"] == ["'none'"] and policy["form-action"] == ["'none'"]
    assert r.headers["X-Content-Type-Options"] == "nosniff"


def test_the_checkout_and_api_policies_are_unchanged(stack):
    created = stack.create_session()
    page = stack.http.get(_path(created["checkout_url"]))
    assert page.status_code == 200
    assert "'unsafe-inline'" not in page.headers["Content-Security-Policy"]
    assert "connect-src 'self';" in page.headers["Content-Security-Policy"]
    api = stack.http.get("/v1/openapi.json")
    assert api.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"


def test_docs_are_not_an_api_operation_and_are_not_rate_limited(stack_factory):
    stack = stack_factory(**{f"RATE_LIMIT_{scope}": "1 per minute" for scope in SCOPES})
    doc = stack.http.get("/v1/openapi.json")
    assert doc.status_code == 200
    assert not [path for path in doc.get_json()["paths"] if "docs" in path or "static" in path]
    assert stack.http.get("/v1/openapi.json").status_code == 429  # the API's limit counts that route...
    for _ in range(5):  # ...but not the page or its bundle
        assert stack.http.get("/docs").status_code == 200
        assert stack.http.get("/static/apidocs/swagger-ui-bundle.js").status_code == 200


def test_the_bundle_is_swagger_ui_5_with_its_licence():
    """Swagger UI 5 is the first to read OpenAPI 3.1 documents; its Apache-2.0 licence ships beside it."""
    version = (bundle_dir() / "VERSION").read_text().strip().lstrip("v")
    assert int(version.split(".")[0]) >= 5, version
    assert "Apache License" in (bundle_dir() / "LICENSE").read_text()
