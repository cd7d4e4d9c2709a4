"""Security headers, set in one place. CSP is data: a dict of directive → sources.

Card pages: no caching (``Cache-Control: no-store``; only ``/static`` files and a merchant's accent stylesheet
under ``/theme``, which hold nothing about a customer, may be cached), no referrer, no sniffing,
scripts and styles only from our own ``/static`` (no ``unsafe-inline``), and
``frame-ancestors`` from ``PAYGATE_FRAME_ANCESTORS`` so the page can sit in an
iframe modal only on allowed origins.

In production every response also carries ``Strict-Transport-Security`` (:data:`HSTS`, RFC 6797): browsers
then reach the page and the API over https only, for two years, subdomains included.
"""

from __future__ import annotations

from flask import Flask, request

API_CSP = {"default-src": ["'none'"], "frame-ancestors": ["'none'"]}
HSTS = "max-age=63072000; includeSubDomains"


def checkout_csp(frame_ancestors: tuple[str, ...]) -> dict[str, list[str]]:
    return {"default-src": ["'none'"], "script-src": ["'self'"], "style-src": ["'self'"],
            "img-src": ["'self'", "data:"], "connect-src": ["'self'"], "form-action": ["'self'"],
            "base-uri": ["'none'"], "frame-ancestors": list(frame_ancestors)}


def serialize_csp(policy: dict[str, list[str]]) -> str:
    return "; ".join(f"{name} {' '.join(values)}" for name, values in policy.items())


def init_app(app: Flask, frame_ancestors: tuple[str, ...], *, hsts: bool = False) -> None:
    """Sets the security headers on every response; ``hsts`` (production) adds :data:`HSTS`."""
    page_csp = serialize_csp(checkout_csp(frame_ancestors))
    api_csp = serialize_csp(API_CSP)

    @app.after_request
    def _headers(response):
        h = response.headers
        if hsts:
            h["Strict-Transport-Security"] = HSTS
        h.setdefault("X-Content-Type-Options", "nosniff")
        h.setdefault("Referrer-Policy", "no-referrer")
        if request.path.startswith("/static/"):
            h.setdefault("Cache-Control", "public, max-age=300")
            return response
        if request.path.startswith("/theme/") and response.status_code == 200:  # app/merchant.py sets its own
            h.setdefault("Content-Security-Policy", api_csp)
            return response
        h["Cache-Control"] = "no-store"
        h.setdefault("Content-Security-Policy", page_csp if response.mimetype == "text/html" else api_csp)
        return response
