"""``GET /docs``: the browsable API reference, Swagger UI rendering ``GET /v1/openapi.json`` (docs/api.md, "Browsable
API reference").

The Swagger UI bundle (https://github.com/swagger-api/swagger-ui, Apache-2.0) comes from the ``flask-swagger-ui``
package on PyPI (https://pypi.org/project/flask-swagger-ui/, MIT), a runtime dependency: its ``dist`` folder is served
as this blueprint's static folder at ``/static/apidocs/`` (cached like the app's other static files, revalidated by
their ``ETag``, never ``no-store``: :mod:`app.security`). Nothing is loaded from another site. Only the files are
used, not the package's blueprint, whose page configures Swagger UI with an inline script.

The page is ``templates/apidocs/index.html``; Swagger UI is started by ``static/apidocs-init.js`` with the
document's URL from a ``data-`` attribute, so the page runs without inline script or style under its own
Content-Security-Policy (:func:`docs_csp`). ``/docs`` is not an API operation: it is not in the OpenAPI document
(whose paths are ``/v1/...`` and ``/oauth/token``), not rate limited (the limits count the API's blueprint, the
token endpoint and the checkout posts: :mod:`app.ratelimit`) and takes no admission slot (a plain ``GET``:
:mod:`app.admission`).
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path
from urllib.parse import urlsplit

from flask import Blueprint, make_response, render_template

from .security import serialize_csp


def bundle_dir() -> Path:
    """The folder holding ``swagger-ui-bundle.js``, ``swagger-ui.css`` and their licence (``LICENSE``, ``VERSION``)
    inside the installed ``flask_swagger_ui`` package. Raises :class:`RuntimeError` when it is not installed."""
    spec = find_spec("flask_swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the flask-swagger-ui package (the Swagger UI bundle of /docs) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "dist"


bp = Blueprint("apidocs", __name__, static_folder=str(bundle_dir()), static_url_path="/static/apidocs")


def docs_csp(public_base_url: str) -> dict[str, list[str]]:
    """The page's Content-Security-Policy: scripts, styles and images from this origin only (``data:`` images: the
    bundle's stylesheet draws its icons as data URIs), requests to this origin and to ``PAYGATE_PUBLIC_BASE_URL``
    (the document's ``servers`` entry, where "Try it out" sends requests), no framing, no forms, no ``<base>``. No
    ``'unsafe-inline'`` and no ``'unsafe-eval'``."""
    parts = urlsplit(public_base_url)
    connect = ["'self'"]
    if parts.scheme in ("http", "https") and parts.netloc:
        connect.append(f"{parts.scheme}://{parts.netloc}")
    return {"default-src": ["'none'"], "script-src": ["'self'"], "style-src": ["'self'"],
            "img-src": ["'self'", "data:"], "connect-src": connect, "form-action": ["'none'"],
            "base-uri": ["'none'"], "frame-ancestors": ["'none'"]}


@bp.get("/docs")
def docs():
    """The Swagger UI page (HTML). Its own CSP header (:func:`docs_csp`): :mod:`app.security` keeps a policy a
    view already set."""
    from . import services

    response = make_response(render_template("apidocs/index.html", spec_url="/v1/openapi.json"))
    response.headers["Content-Security-Policy"] = serialize_csp(docs_csp(services().settings.public_base_url))
    return response
