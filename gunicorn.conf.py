"""paygate's production serving configuration for gunicorn (docs/architecture.md, "Serving").

``gunicorn 'app:create_app()'`` run from the project's root reads this file by itself (gunicorn's default
``--config`` is ``./gunicorn.conf.py``); the demo, the test servers and the benchmark pass it explicitly with
``-c`` (:func:`paygate.processes.gunicorn_command`). Settings, from lowest to highest precedence: this file,
``GUNICORN_CMD_ARGS``, the command line (https://docs.gunicorn.org/en/stable/configure.html).

Worker model: ``gthread`` — ``PAYGATE_WEB_WORKERS`` processes (default 2, one per core of a small VM) of
``PAYGATE_WEB_THREADS`` request threads each (default 128). A card submission holds its thread while it waits on
the gateway (Stripe: a few hundred ms), and the other threads keep answering polls, page loads and API calls;
the work is I/O-bound, so threads (not more processes) are what a slow gateway needs. gthread hands ready
requests to its threads in arrival order, so the threads are many (a waiting thread costs memory, not CPU): a
poll must not queue behind hundreds of customers. What bounds the CPU work instead is the app's admission
control (``app/admission.py``, ``PAYGATE_ADMISSION_SLOTS``, default 1 per process): page renders, card
submissions and other writes run a few at a time, and polls never wait for a slot. Each worker also sets the
interpreter's switch interval to ``PAYGATE_WEB_SWITCH_INTERVAL_MS`` (default 1 ms; Python's is 5 ms): a poll
whose Redis or database answer has arrived waits at most that long for a CPU-bound thread to hand over the
interpreter lock, at each of its round trips. Every thread-shared
object is thread-safe: the SQLAlchemy engine's ``QueuePool`` (``PAYGATE_DB_POOL_SIZE`` +
``PAYGATE_DB_MAX_OVERFLOW``, default the thread count up to 16 + half of it) and redis-py's ``BlockingConnectionPool``
(``PAYGATE_REDIS_MAX_CONNECTIONS``, default 2 × threads + 8) are sized from ``PAYGATE_WEB_THREADS`` by
:class:`kernel.settings.Settings`, so set it in the environment rather than with ``--threads``.

``preload_app`` is off: each worker imports and builds the app itself after the fork, so the database
engine, the Redis pools (paygate's and the rate limiter's) and any HTTP client are created in the process that
uses them and never shared across a fork. (Preloading would save a few MB of copy-on-write memory per worker
but would build those pools in the master.) Should someone turn it on anyway (``--preload``), :func:`post_fork`
drops the inherited database connections in each worker (SQLAlchemy's "Using Connection Pools with
Multiprocessing"); redis-py already opens new connections when it sees a new process id.

Other choices: no access log (the app logs every request itself, as JSON with its request id);
``max_requests`` with jitter recycles each worker after about 10,000 requests so a slow leak cannot grow for
ever and the workers do not restart together; the heartbeat file lives in ``/dev/shm`` when there is one (a
disk-backed ``/tmp`` can stall the heartbeat, https://docs.gunicorn.org/en/stable/faq.html); no control socket
unless ``PAYGATE_WEB_CONTROL_SOCKET`` names one (its default path is one per user, which several instances on
one host would share); each worker keeps glibc to 2 malloc arenas unless ``MALLOC_ARENA_MAX`` says otherwise (a hundred request
threads would otherwise each hold freed memory in their own arena); once the app is built, each worker freezes
the objects it made at startup out of the garbage collector's reach (:func:`post_worker_init`), so a full
collection does not stall every request thread for ~100 ms.

Environment: ``PAYGATE_BIND`` (default gunicorn's: ``127.0.0.1:8000``, or ``0.0.0.0:$PORT``; several
addresses separated by commas), ``PAYGATE_WEB_WORKERS``, ``PAYGATE_WEB_THREADS``, ``PAYGATE_WEB_TIMEOUT``
(seconds, default 30), ``PAYGATE_WEB_KEEPALIVE`` (seconds, default 5; behind a load balancer set it above the
balancer's idle timeout), ``PAYGATE_WEB_CONTROL_SOCKET``, ``PAYGATE_WEB_SWITCH_INTERVAL_MS``.
"""

import os


def _env_number(name: str, default, lo, hi, kind=int):
    """``name`` from the environment as ``kind`` (int or float) within ``lo``..``hi``, else ``default``; exits with
    a message naming the variable when it is malformed or out of bounds."""
    raw = os.environ.get(name, "")
    try:
        value = kind(raw) if raw.strip() else default
    except ValueError:
        raise SystemExit(f"{name} must be {'an integer' if kind is int else 'a number'}") from None
    if not lo <= value <= hi:
        raise SystemExit(f"{name} must be between {lo} and {hi}")
    return value


if os.environ.get("PAYGATE_BIND", "").strip():
    bind = [b.strip() for b in os.environ["PAYGATE_BIND"].split(",") if b.strip()]

worker_class = "gthread"
workers = _env_number("PAYGATE_WEB_WORKERS", 2, 1, 64)
threads = _env_number("PAYGATE_WEB_THREADS", 128, 1, 256)  # the same default and bounds as kernel.settings
worker_connections = 1000  # open (keep-alive) connections per worker; idle ones wait in the poller, not a thread

timeout = _env_number("PAYGATE_WEB_TIMEOUT", 30, 5, 3600)  # a worker silent this long is restarted
graceful_timeout = 30  # on SIGTERM / recycling: in-flight requests (a gateway call) get this long to finish
keepalive = _env_number("PAYGATE_WEB_KEEPALIVE", 5, 0, 3600)

max_requests = 10_000
max_requests_jitter = 1_000

preload_app = False

accesslog = None  # the app's own JSON line per request ("paygate.http")
errorlog = "-"

if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
    worker_tmp_dir = "/dev/shm"

if os.environ.get("PAYGATE_WEB_CONTROL_SOCKET", "").strip():
    control_socket = os.environ["PAYGATE_WEB_CONTROL_SOCKET"].strip()
else:
    control_socket_disable = True


switch_interval_ms = _env_number("PAYGATE_WEB_SWITCH_INTERVAL_MS", 1.0, 0.1, 100.0, float)


def _limit_malloc_arenas() -> None:
    """At most ``MALLOC_ARENA_MAX`` (default here: 2) glibc malloc arenas in this worker, unless the environment
    sets it (glibc then reads it itself). glibc gives each thread that allocates under contention its own arena, up
    to 8 per core, and memory freed in one stays with it; with a hundred request threads that holds several MB per
    worker for no gain, as allocation mostly happens under the interpreter lock anyway
    (https://www.gnu.org/software/libc/manual/html_node/Memory-Allocation-Tunables.html). Not glibc: nothing."""
    if os.environ.get("MALLOC_ARENA_MAX", "").strip():
        return
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-8, 2)  # M_ARENA_MAX (malloc.h)
    except (OSError, AttributeError):
        pass


def post_fork(server, worker):
    """In a worker just forked: set the interpreter's thread switch interval, and with ``preload_app`` on, drop
    the database connections inherited from the master (``engine.dispose(close=False)`` leaves the master's
    sockets alone)."""
    import sys

    sys.setswitchinterval(switch_interval_ms / 1000)
    _limit_malloc_arenas()
    if not server.cfg.preload_app:
        return
    app = getattr(worker.app, "callable", None)
    services = getattr(app, "extensions", {}).get("paygate") if app is not None else None
    if services is not None:
        services.engine.dispose(close=False)


def post_worker_init(worker):
    """In a worker that has just built the app: move every object that exists now (modules, the app, its pools and
    caches — about a million of them) to the garbage collector's permanent generation (``gc.freeze()``,
    https://docs.python.org/3/library/gc.html#gc.freeze). A full collection holds the interpreter lock while it
    walks every tracked object; over those startup objects it takes about 100 ms on the 2-core bench VM, which every
    request thread of the process waits out (a poll's p99). After the freeze a full collection walks only what
    requests left behind. The frozen objects are never collected, which costs nothing: they live as long as the
    worker does."""
    import gc

    gc.collect()  # what startup left as garbage is freed first, not frozen
    gc.freeze()
