"""Local processes on loopback: a free port, waiting with a deadline, stopping a process group.

The one place ``paygate demo``, the end-to-end suite (``e2e/conftest.py``), the test servers
(``tests/services.py``) and the benchmark (``bench/run.py``) take these from, and the gunicorn command line that
serves the app with the shipped ``gunicorn.conf.py`` (:func:`gunicorn_command`). Children are started by their
callers with ``start_new_session=True`` (each its own process group), so :func:`stop_processes` reaches the
workers a gunicorn master forked too.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterable

HOST = "127.0.0.1"
GUNICORN_CONF = Path(__file__).resolve().parent.parent / "gunicorn.conf.py"
"""The shipped serving configuration (gthread workers, pools sized to the threads; docs/architecture.md,
"Serving")."""


def gunicorn_command(port: int, app: str = "app:create_app()", *, python: str | None = None) -> list[str]:
    """The argv that serves ``app`` with the shipped :data:`GUNICORN_CONF` on 127.0.0.1:``port`` (``python -m
    gunicorn`` with this interpreter unless ``python`` names another). Workers and threads come from
    ``PAYGATE_WEB_WORKERS``/``PAYGATE_WEB_THREADS`` in the child's environment."""
    return [python or sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF), "--bind", f"{HOST}:{port}", app]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the kernel picks it)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def port_free(port: int) -> bool:
    """True when nothing is bound to ``port`` on 127.0.0.1."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def port_open(port: int, timeout: float = 0.2) -> bool:
    """True when something accepts connections on 127.0.0.1:``port``."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(check: Callable[[], object], *, timeout: float, what: str, interval: float = 0.1,
               abort: Callable[[], str | None] | None = None, error: type[Exception] = TimeoutError,
               sleep: Callable[[float], object] = time.sleep) -> object:
    """Calls ``check`` until it returns something truthy (which is returned) or ``timeout`` seconds pass.

    A check that raises ``OSError`` (connection refused...) or an ``httpx.HTTPError`` counts as "not yet".
    ``abort`` is asked before every try: a non-empty answer (why, e.g. "web exited with status 1") stops the
    wait at once. Both failures raise ``error(message)``; ``sleep`` is how to pause between tries.
    """
    try:
        import httpx

        transient: tuple[type[Exception], ...] = (OSError, httpx.HTTPError)
    except ImportError:  # pragma: no cover - httpx is a dependency
        transient = (OSError,)
    deadline = time.monotonic() + timeout
    while True:
        reason = abort() if abort is not None else None
        if reason:
            raise error(f"{reason} while waiting for {what}")
        try:
            value = check()
        except transient:
            value = None
        if value:
            return value
        if time.monotonic() >= deadline:
            raise error(f"timed out after {timeout:.0f} s waiting for {what}")
        sleep(interval)


def signal_group(proc: subprocess.Popen, sig: int) -> None:
    """Sends ``sig`` to ``proc``'s process group if it still runs (a group already gone is fine)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass


def stop_processes(procs: Iterable[subprocess.Popen], *, timeout: float = 10.0,
                   on_kill: Callable[[subprocess.Popen], object] | None = None) -> None:
    """SIGTERM to every process group, then waits up to ``timeout`` seconds for each and SIGKILLs the ones
    still running (``on_kill(proc)`` is told first). Returns when all have exited."""
    procs = list(procs)
    for proc in procs:
        signal_group(proc, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            if on_kill is not None:
                on_kill(proc)
            signal_group(proc, signal.SIGKILL)
            proc.wait()
