"""In-process CPU profile of the web tier's request hot path (docs/benchmarks.md).

Builds the real app (:func:`app.create_app` on a fresh SQLite file and a private ``redis-server`` on a free port,
the same settings as ``bench/run.py``'s stack: sandbox gateway, fraud and rate limits raised but still counted)
and drives ``--customers`` customers through WSGI, without HTTP or a load harness:

1. ``POST /v1/payment-sessions`` (bearer token, a fresh customer each time);
2. ``GET`` the checkout page (``checkout_url``);
3. ``POST /checkout/{id}?t=…`` with the sandbox card 4242 4242 4242 4242, the page's ``csrf_token`` and
   ``submission_id`` (answers 303);
4. ``GET /v1/payment-sessions/{id}`` (a Genesys flow's poll).

Each operation's CPU time (``time.process_time``, this process only: Redis runs in its own process) is recorded;
the median, mean and lower decile (p10) per operation, and per customer (1 + 2 + 3), are printed next to the
bare-Flask baseline (``bench/baseline_app.py``'s ``GET /``) driven the same way. Log lines go to /dev/null (as cheap as a log file).

    .venv/bin/python -m bench.profile                      # 300 customers after 50 warm-up ones
    .venv/bin/python -m bench.profile --customers 500 --profile --top 40   # plus a cProfile top list
    .venv/bin/python -m bench.profile --profile --only submit              # profile one operation only
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import io
import json
import os
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

from paygate import processes

ROOT = Path(__file__).resolve().parent.parent
CARD = "4242 4242 4242 4242"
HIGH_LIMIT = str(10**9)
OPERATIONS = ("create", "page", "submit", "poll")
_FIELDS = re.compile(r'name="(csrf_token|submission_id)"[^>]*value="([^"]*)"')
_FIELDS_REV = re.compile(r'value="([^"]*)"[^>]*name="(csrf_token|submission_id)"')


def _hidden_fields(html: str) -> dict[str, str]:
    fields = dict(_FIELDS.findall(html))
    fields.update({name: value for value, name in _FIELDS_REV.findall(html)})
    return fields


def _settings_env(tmp: Path, redis_port: int) -> dict[str, str]:
    return {
        "PAYGATE_ENV": "development",
        "PAYGATE_INSTANCE_PATH": str(tmp / "instance"),
        "PAYGATE_DATABASE_URL": f"sqlite:///{tmp / 'profile.sqlite3'}",
        "PAYGATE_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "PAYGATE_PUBLIC_BASE_URL": "http://127.0.0.1:8000",
        "PAYGATE_GATEWAY": "sandbox",
        "PAYGATE_FRAUD_IP_ATTEMPTS_PER_HOUR": HIGH_LIMIT,
        "PAYGATE_FRAUD_CARD_SESSIONS_PER_HOUR": HIGH_LIMIT,
        "PAYGATE_FRAUD_CARD_DECLINES_PER_DAY": HIGH_LIMIT,
        **{f"PAYGATE_RATE_LIMIT_{scope}": f"{HIGH_LIMIT} per minute" for scope in (
            "API", "TOKEN", "TOKEN_FAILURES_CLIENT", "TOKEN_FAILURES_IP", "CHECKOUT_SESSION", "CHECKOUT_IP")},
    }


def _session_body() -> dict:
    return {"conversation_id": str(uuid.uuid4()), "participant_id": str(uuid.uuid4()),
            "customer_account_id": f"BENCH-{uuid.uuid4().hex[:12]}", "intent": "payment", "amount": 2500,
            "currency": "USD", "channel": "messaging", "reference": "BENCH"}


class Customer:
    """One customer's four requests through Flask's test client; each records its CPU seconds in ``spent``."""

    def __init__(self, app, auth: dict, spent: dict[str, list[float]], profiler: cProfile.Profile | None,
                 only: str | None, commands: dict[str, list[int]] | None = None):
        self.app = app
        self.commands = commands
        """Redis commands per operation (``INFO stats`` before and after, outside the timed part), when given."""
        self.auth = auth
        self.spent = spent
        self.profiler = profiler
        self.only = only

    def _timed(self, name: str, call):
        profiling = self.profiler is not None and self.only in (None, name)
        before = self._redis_commands() if self.commands is not None else 0
        t = time.process_time()
        if profiling:
            self.profiler.enable()
        try:
            return call()
        finally:
            if profiling:
                self.profiler.disable()
            self.spent[name].append(time.process_time() - t)
            if self.commands is not None:
                self.commands[name].append(self._redis_commands() - before - 1)  # minus the INFO itself

    def _redis_commands(self) -> int:
        return int(self.app.extensions["paygate"].redis.info("stats")["total_commands_processed"])

    def run(self) -> None:
        c = self.app.test_client()  # a fresh cookie jar per customer, as bench/run.py clears it
        r = self._timed("create", lambda: c.post("/v1/payment-sessions", json=_session_body(), headers=self.auth))
        assert r.status_code == 201, (r.status_code, r.get_data(as_text=True)[:300])
        body = r.get_json()
        url = urlsplit(body["checkout_url"])
        path = f"{url.path}?{url.query}"
        page = self._timed("page", lambda: c.get(path))
        assert page.status_code == 200, page.status_code
        fields = _hidden_fields(page.get_data(as_text=True))
        assert len(fields) == 2, fields
        form = {**fields, "number": CARD, "expiry": "12/30", "cvc": "123", "cardholder_name": "Bench Customer"}
        r = self._timed("submit", lambda: c.post(path, data=form))
        assert r.status_code == 303, (r.status_code, r.get_data(as_text=True)[:300])
        r = self._timed("poll", lambda: c.get(f"/v1/payment-sessions/{body['session_id']}", headers=self.auth))
        assert r.status_code == 200 and r.get_json()["status"] == "approved", r.get_json()


def _baseline_cpu(requests: int) -> list[float]:
    from bench.baseline_app import create_app

    c = create_app().test_client()
    out = []
    for _ in range(requests):
        t = time.process_time()
        c.get("/")
        out.append(time.process_time() - t)
    return out


def _by_package(stats: pstats.Stats) -> dict[str, float]:
    """Own time per top-level package (site-packages name, our top-level package, or the stdlib module)."""
    out: dict[str, float] = {}
    for (filename, _line, name), row in stats.stats.items():
        if "site-packages/" in filename:
            package = filename.split("site-packages/", 1)[1].split("/", 1)[0]
        elif filename.startswith(str(ROOT)):
            package = "/".join(Path(filename).relative_to(ROOT).parts[:2])
        elif filename == "~":
            package = "builtin " + name.split(" of ")[0][:40]
        else:
            package = "stdlib " + Path(filename).stem
        out[package] = out.get(package, 0.0) + row[2]
    return out


def _ms(values: list[float]) -> tuple[float, float, float]:
    """(median, mean, lower decile) of ``values`` seconds, in ms. On a shared host the lower decile moves least
    between repeats (noise only ever adds CPU time), so it is the figure to compare two versions of the code by."""
    ordered = sorted(values)
    return (statistics.median(ordered) * 1000, statistics.fmean(ordered) * 1000,
            ordered[len(ordered) // 10] * 1000)


def run(customers: int, warmup: int, profile: bool, only: str | None, top: int, sort: str,
        env: dict[str, str] | None = None, restrict: str | None = None) -> dict:
    server = shutil.which("redis-server")
    if server is None:
        raise SystemExit("redis-server is not installed")
    tmp = Path(tempfile.mkdtemp(prefix="paygate-profile-"))
    port = processes.free_port()
    (tmp / "redis").mkdir()
    redis_proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp / "redis"),
                                   "--save", "", "--appendonly", "no", "--loglevel", "warning"],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    real_stdout = sys.stdout
    devnull = open(os.devnull, "w")
    try:
        processes.wait_until(lambda: processes.port_open(port), timeout=15, what="redis")
        from app import create_app
        from kernel.clock import system_clock
        from kernel.settings import Settings
        from payments.clients import create_client

        settings = Settings.from_env({**_settings_env(tmp, port), **(env or {})})
        sys.stdout = devnull  # configure_logging sends log lines to sys.stdout: here, nowhere
        app = create_app(settings)
        svc = app.extensions["paygate"]
        with svc.Session.begin() as db:
            created = create_client(db, name="profile", callback_url="http://127.0.0.1:9/callbacks",
                                    now=system_clock(), new_id=svc.new_id)
        http = app.test_client()
        basic = base64.b64encode(f"{created.client_id}:{created.client_secret}".encode()).decode()
        r = http.post("/oauth/token", data={"grant_type": "client_credentials"},
                      headers={"Authorization": f"Basic {basic}"})
        assert r.status_code == 200, r.get_data(as_text=True)
        auth = {"Authorization": f"Bearer {r.get_json()['access_token']}"}

        scratch = {name: [] for name in OPERATIONS}
        for _ in range(warmup):
            Customer(app, auth, scratch, None, None).run()
        _baseline_cpu(max(50, warmup))
        spent = {name: [] for name in OPERATIONS}
        profiler = cProfile.Profile(time.process_time) if profile else None  # CPU time, not wall time
        for _ in range(customers):
            Customer(app, auth, spent, profiler, only).run()
        baseline = _baseline_cpu(max(customers, 200))
        commands = {name: [] for name in OPERATIONS}
        for _ in range(20):  # Redis commands per operation, counted apart from the timed customers
            Customer(app, auth, {name: [] for name in OPERATIONS}, None, None, commands).run()
        svc.close()
    finally:
        sys.stdout = real_stdout
        devnull.close()
        redis_proc.terminate()
        try:
            redis_proc.wait(10)
        except subprocess.TimeoutExpired:
            redis_proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)

    per_customer = [sum(spent[n][i] for n in ("create", "page", "submit")) for i in range(customers)]
    result = {name: _ms(values) for name, values in spent.items()}
    result["customer (create+page+submit)"] = _ms(per_customer)
    result["baseline GET / (bare Flask)"] = _ms(baseline)
    print(f"CPU ms per operation in this process ({customers} customers after {warmup} warm-up, "
          f"{'with cProfile on' if profile else 'no profiler'}):")
    print(f"  {'operation':32} {'median':>8} {'mean':>8} {'p10':>8} {'redis cmds':>10}")
    for name, (median, mean, low) in result.items():
        cmds = f"{statistics.median(commands[name]):10.0f}" if name in commands else ""
        print(f"  {name:32} {median:8.2f} {mean:8.2f} {low:8.2f} {cmds}")
    base = result["baseline GET / (bare Flask)"][0]
    print(f"  create / baseline CPU (median): {result['create'][0] / base:.2f}x")
    if profiler is not None:
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats(sort).print_stats(*([restrict] if restrict else []), top)
        print(out.getvalue())
        print("own CPU time (tottime) by package, % of the profiled total:")
        total = sum(row[2] for row in stats.stats.values()) or 1.0
        for package, seconds in sorted(_by_package(stats).items(), key=lambda kv: -kv[1])[:25]:
            print(f"  {package:40} {100 * seconds / total:6.1f}%")
    return {name: {"median_ms": m, "mean_ms": a, "p10_ms": low,
                   **({"redis_commands": statistics.median(commands[name])} if name in commands else {})}
            for name, (m, a, low) in result.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--profile", action="store_true", help="print a cProfile top list of the measured requests")
    parser.add_argument("--only", choices=OPERATIONS, help="with --profile: profile this operation only")
    parser.add_argument("--top", type=int, default=35)
    parser.add_argument("--sort", default="cumulative", help="pstats sort key (cumulative, tottime, ...)")
    parser.add_argument("--restrict", help="with --profile: only functions whose file:line(name) matches this regex")
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON line")
    parser.add_argument("--env", action="append", default=[], metavar="PAYGATE_X=VALUE",
                        help="override a setting (repeatable), e.g. PAYGATE_RATE_LIMITS_ENABLED=false to compare")
    args = parser.parse_args(argv)
    env = dict(item.split("=", 1) for item in args.env)
    result = run(args.customers, args.warmup, args.profile, args.only, args.top, args.sort, env, args.restrict)
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
