"""The PCI boundary check: finds test card numbers (PANs) or CVC values anywhere tests leave traces.

Scanned: every file under the test state directory (server logs, worker logs, Redis's append-only
file — which holds every write ever made to Redis, in every database, so keys deleted or flushed between
tests and the databases of every xdist worker are still checked — the Genesys emulator's record files: callback bodies and every body written to its
Platform API), every column of every table of every test database
(SQLite files and PostgreSQL databases — the shared server's, and those of the private clusters tests start and
stop themselves, which :func:`started_cluster` brings up again for the scan) except the vault's ciphertext, every
event body, and every value left in every database of the shared test Redis (:func:`scan_redis`). Generated
payment reports are files under the state directory too (tests/functional/test_reports.py keeps the CSVs
it receives from the API and the CLI in ``reports/``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

# Stripe's published test cards (https://docs.stripe.com/testing) plus the sandbox-only ones tests use
TEST_PANS = [
    "4242424242424242", "4000056655665556", "5555555555554444", "2223003122003222", "5200828282828210",
    "5105105105105100", "378282246310005", "371449635398431", "6011111111111117", "6011000990139424",
    "6011981111111113", "3056930009020004", "36227206271667", "6555900000604105", "3566002020360505",
    "6200000000000005", "6200000000000047", "6205500000000000004", "4000000000000002", "4000000000009995",
    "4000000000009987", "4000000000009979", "4000000000000069", "4000000000000127", "4000000000000119",
    "4000000000006975", "4100000000000019", "4000000000004954", "4000000000009235", "4242424242424241",
    "4000000000009904", "4111111111111111", "4000002500003155", "4000002760003184", "4000000000000259",
    "4000000000005126", "4000000000007726", "4000003800000446", "4000000000000341",
]
GENERATED_PAN_RE = re.compile(rb"(?<!\d)401288\d{10}(?!\d)")
"""The family of distinct Visa numbers tests generate by the dozen (tests/functional/test_voice_signals.py,
``card()``: ``401288`` + a 9-digit counter + the Luhn digit); a Luhn-valid match is a finding."""
TEST_CVCS = ["7294"]
"""CVCs distinctive enough to be looked for by value, whatever the field around them is called: the
amex CVC keyed into the Genesys emulator's secure flow (e2e/test_genesys.py, the emulator's secure flow
tests). Found as a whole quoted value (``"7294"``, ``'7294'``), e.g. a DTMF variable, a recorded flow
step or a form value; common CVCs such as ``123`` are only looked for in a CVC-named field."""
VAULT_CIPHER_COLUMNS = {("vault_cards", "ciphertext"), ("vault_cards", "wrapped_key"), ("vault_cards", "nonce")}
# a CVC-named field carrying digits, in JSON, form encoding or key=value text
_CVC_RE = re.compile(rb"""(?i)["']?\b(cvc|cvv|csc|cc-csc|cvc2|security[_ -]?code)\b["']?\s*[:=]\s*["']?(\d{3,4})\b""")
_CVC_VALUE_RE = re.compile(rb"""(["'])(""" + b"|".join(re.escape(c.encode()) for c in TEST_CVCS) + rb""")\1""")


def _pan_patterns(pans) -> re.Pattern:
    alternatives = []
    for pan in pans:
        alternatives.append(re.escape(pan))
        alternatives.append(r"[ -]?".join(re.escape(d) for d in pan))  # grouped with spaces or dashes
    return re.compile("(" + "|".join(sorted(set(alternatives), key=len, reverse=True)) + ")")


_PAN_TEXT = _pan_patterns(TEST_PANS)
_PAN_BYTES = re.compile(_PAN_TEXT.pattern.encode())


@dataclass(frozen=True)
class Finding:
    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


def scan_bytes(where: str, data: bytes) -> list[Finding]:
    """Findings in one blob: any test PAN (plain or grouped), any CVC-named field with digits and any
    :data:`TEST_CVCS` value quoted on its own."""
    found = []
    for m in _PAN_BYTES.finditer(data):
        digits = re.sub(rb"\D", b"", m.group(0)).decode()
        found.append(Finding(where, f"PAN ending {digits[-4:]} at byte {m.start()}"))
    for m in GENERATED_PAN_RE.finditer(data):
        if luhn_valid(m.group(0).decode()):
            found.append(Finding(where, f"generated PAN ending {m.group(0)[-4:].decode()} at byte {m.start()}"))
    for m in _CVC_RE.finditer(data):
        found.append(Finding(where, f"CVC field {m.group(1).decode()!r} at byte {m.start()}"))
    for m in _CVC_VALUE_RE.finditer(data):
        found.append(Finding(where, f"test CVC value at byte {m.start()}"))
    return found


def luhn_valid(digits: str) -> bool:
    """The Luhn check (ISO/IEC 7812-1) of a digit string."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def scan_files(root: Path, *, skip_dirs=()) -> tuple[list[Finding], int]:
    """Scans every regular file below ``root`` (PostgreSQL data directories are checked through SQL
    instead, see :func:`scan_database`: only their server logs are read, and the walk does not descend into
    their table files). Returns findings and how many files were read."""
    findings, count = [], 0
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if d not in skip_dirs)
        in_pg_data = "PG_VERSION" in files or any((parent / "PG_VERSION").exists() for parent in here.parents
                                                   if root in parent.parents or parent == root)
        if "PG_VERSION" in files:
            dirs[:] = [d for d in dirs if d in ("log", "pg_log")]  # table files are scanned through SQL
        for name in sorted(files):
            path = here / name
            if in_pg_data and path.suffix != ".log" and name != "server.log":
                continue  # PostgreSQL's data files: its tables are scanned through SQL
            if path.suffix in (".sqlite3",) or name.endswith((".sqlite3-wal", ".sqlite3-shm")):
                continue  # databases are scanned column by column (ciphertext aside)
            if not path.is_file():
                continue
            try:
                data = path.read_bytes()
            except OSError:
                continue
            count += 1
            findings += scan_bytes(str(path), data)
    return findings, count


def scan_database(url: str) -> tuple[list[Finding], int]:
    """Scans every column of every table at ``url`` except the vault's ciphertext columns."""
    from sqlalchemy import create_engine, inspect, text

    engine = create_engine(url)
    findings, cells = [], 0
    try:
        with engine.connect() as conn:
            for table in inspect(conn).get_table_names():
                for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                    for column, value in row._mapping.items():
                        if (table, column) in VAULT_CIPHER_COLUMNS or value is None:
                            continue
                        cells += 1
                        blob = value if isinstance(value, bytes) else str(value).encode()
                        findings += scan_bytes(f"{url.rsplit('/', 1)[-1]}:{table}.{column}", blob)
                if "cvc" in {c["name"].lower() for c in inspect(conn).get_columns(table)}:
                    findings.append(Finding(f"{table}", "has a cvc column"))
    finally:
        engine.dispose()
    return findings, cells


def scan_redis(url: str) -> tuple[list[Finding], int, int]:
    """Scans every key and value still held in every database of the Redis server at ``url`` (whatever database
    the URL names: each xdist worker has its own). Returns findings, how many databases and how many keys were
    read."""
    from urllib.parse import urlsplit

    import redis as redis_lib

    client = redis_lib.Redis.from_url(url)
    try:
        databases = int(client.config_get("databases").get("databases", 16))
    finally:
        client.close()
    findings, keys = [], 0
    for number in range(databases):
        db = redis_lib.Redis.from_url(urlsplit(url)._replace(path=f"/{number}").geturl())  # the URL's db wins
        try:
            for key in db.scan_iter(count=1000):
                keys += 1
                kind = db.type(key).decode()
                if kind == "string":
                    parts = [db.get(key)]
                elif kind == "hash":
                    parts = [b for pair in db.hgetall(key).items() for b in pair]
                elif kind == "list":
                    parts = db.lrange(key, 0, -1)
                elif kind == "set":
                    parts = list(db.smembers(key))
                elif kind == "zset":
                    parts = [m for m, _ in db.zrange(key, 0, -1, withscores=True)]
                elif kind == "stream":
                    parts = [b for _, fields in db.xrange(key) for pair in fields.items() for b in pair]
                else:
                    parts = []
                blob = b"\n".join([key, *(p for p in parts if p is not None)])
                findings += scan_bytes(f"redis db {number}: {key[:80]!r}", blob)
        finally:
            db.close()
    return findings, databases, keys


def _as_postgres(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def stopped_postgres_clusters(root: Path, pgbin: Path) -> list[Path]:
    """PostgreSQL data directories below ``root`` whose server is not running (private clusters tests started and
    stopped, e.g. tests/faultstack.py's); running ones are reached through their URL instead."""
    import subprocess

    found = []
    for marker in sorted(root.rglob("PG_VERSION")):
        data = marker.parent
        if not (data / "global").is_dir() or not (data / "postgresql.conf").is_file():
            continue  # a database's directory inside a cluster, not a cluster
        status = subprocess.run(_as_postgres([str(pgbin / "pg_ctl"), "-D", str(data), "status"]),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if status.returncode != 0:
            found.append(data)
    return found


def started_cluster(data: Path, pgbin: Path):
    """A context manager: the stopped cluster at ``data`` started on a free loopback port (its socket in a
    temporary directory; crash recovery runs if it was stopped with ``-m immediate``) → a list of URLs of its
    databases that accept connections; stopped again on exit."""
    import contextlib
    import shutil
    import subprocess
    import tempfile

    from sqlalchemy import create_engine, text

    from paygate.processes import free_port

    @contextlib.contextmanager
    def manager():
        port = free_port()
        sock = Path(tempfile.mkdtemp(prefix="pci-scan-pg-"))
        if os.geteuid() == 0:
            shutil.chown(sock, "postgres", "postgres")
        pg_ctl = str(pgbin / "pg_ctl")
        subprocess.run(_as_postgres([pg_ctl, "-D", str(data), "-l", str(sock / "server.log"), "-w", "-t", "60", "-o",
                                     f"-p {port} -k {sock} -c listen_addresses=127.0.0.1", "start"]),
                       check=True, stdout=subprocess.DEVNULL)
        try:
            base = f"postgresql+psycopg://postgres@127.0.0.1:{port}"
            admin = create_engine(f"{base}/postgres")
            try:
                with admin.connect() as conn:
                    names = conn.execute(text("SELECT datname FROM pg_database WHERE datallowconn")).scalars().all()
            finally:
                admin.dispose()
            yield [f"{base}/{name}" for name in sorted(names)]
        finally:
            subprocess.run(_as_postgres([pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"]),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            shutil.rmtree(sock, ignore_errors=True)

    return manager()
