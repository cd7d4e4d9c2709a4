"""A hook around calls that block on another service for a long time (a payment gateway: hundreds of ms).

Domain code wraps such a call in :func:`blocking`; by itself that does nothing. The web tier sets a hook for the
request being served (:func:`use_hook`), so it can give up what the request holds while it only waits — the web
app's admission slot (``app/admission.py``, docs/architecture.md, "Serving") — and take it back before the request
continues. The hook lives in a :class:`contextvars.ContextVar`, so it belongs to one request thread and code
outside a request (the worker, the CLI, tests) never sees one.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar, Token
from typing import Callable, Iterator

__all__ = ["blocking", "use_hook", "reset_hook"]

Hook = Callable[[], AbstractContextManager]
"""Returns a context manager entered for the duration of one blocking call."""

_hook: ContextVar[Hook | None] = ContextVar("paygate_blocking_hook", default=None)


@contextmanager
def blocking() -> Iterator[None]:
    """Runs the body (one call that waits on another service) inside the current hook's context manager, or as
    is when no hook is set."""
    hook = _hook.get()
    with (hook() if hook is not None else nullcontext()):
        yield


def use_hook(hook: Hook | None) -> Token:
    """Sets the hook of the current context (one request); returns the token for :func:`reset_hook`."""
    return _hook.set(hook)


def reset_hook(token: Token) -> None:
    """Restores the hook that was current before :func:`use_hook` returned ``token``."""
    _hook.reset(token)
