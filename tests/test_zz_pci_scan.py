"""Runs after every other suite (see tests/conftest.py; after a parallel run scripts/test.sh runs this file in its
own pass, once every xdist worker has finished): proves no PAN or CVC reached a log, Redis, a
database column outside the vault's ciphertext, a callback body, a body written to the Genesys
emulator, the emulator's state (secure flow steps included) or a saved agent view."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import create_engine, text

from tests import pci_scan
from tests.services import PGBIN


def test_scanner_finds_planted_card_data(tmp_path):
    (tmp_path / "app.log").write_text('{"event": "x", "number": "4242 4242 4242 4242"}\n{"cvc": "123"}\n')
    findings, files = pci_scan.scan_files(tmp_path)
    assert files == 1
    assert any("PAN ending 4242" in str(f) for f in findings) and any("CVC" in str(f) for f in findings)
    assert pci_scan.scan_bytes("x", b"tok_abc last4=4242 fp_xyz amount=2500") == []


def test_scanner_finds_the_generated_cards_of_the_fraud_tests():
    from tests.functional.test_voice_signals import card

    number = card(123456)
    assert [f.what.split(" at")[0] for f in pci_scan.scan_bytes("x", f'{{"number": "{number}"}}'.encode())] == [
        f"generated PAN ending {number[-4:]}"]
    wrong_check_digit = number[:-1] + str((int(number[-1]) + 1) % 10)
    assert pci_scan.scan_bytes("x", wrong_check_digit.encode()) == []
    assert pci_scan.scan_bytes("x", b"17640128800012345678") == []  # inside a longer number: not a card


def test_scanner_finds_the_secure_flow_amex_and_its_cvc(tmp_path):
    (tmp_path / "genesys-state.json").write_text('{"steps": [{"kind": "collect_input", "value": "7294"}]}')
    (tmp_path / "agent.html").write_text("<dd>3782 822463 10005</dd>")
    (tmp_path / "record.jsonl").write_text('{"body": {"Task.cvc": "7294", "securityCode": 7294}}\n')
    findings, files = pci_scan.scan_files(tmp_path)
    assert files == 3
    by_file = {name: [f.what.split(" at byte")[0] for f in findings if f.where.endswith(name)]
               for name in ("genesys-state.json", "agent.html", "record.jsonl")}
    assert by_file["genesys-state.json"] == ["test CVC value"]
    assert by_file["agent.html"] == ["PAN ending 0005"]
    assert by_file["record.jsonl"] == ["CVC field 'cvc'", "CVC field 'securityCode'", "test CVC value"]
    # what the secure flow does keep is clean: counts, the last four, the CVC length
    assert pci_scan.scan_bytes("x", b'{"variable": "Task.cvc", "digits": 4, "cvcLength": 4, "last4": "0005", '
                                    b'"pid": 7294, "at": "2026-11-23T12:07:29.400Z"}') == []


def test_scanner_reads_every_redis_database(tmp_path):
    """Each xdist worker has its own Redis databases: a card number left in any of them, in any value type, is a
    finding (a private server without persistence under tmp_path, so nothing planted reaches the state directory)."""
    import subprocess

    import redis as redis_lib

    from paygate.processes import free_port
    from tests.services import wait_for_port

    port = free_port()
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no", "--databases", "20", "--dir", str(tmp_path)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        url = f"redis://127.0.0.1:{port}/0"
        redis_lib.Redis(port=port, db=0).set("clean", "tok_abc last4=4242")
        redis_lib.Redis(port=port, db=7).hset("planted-hash", "pan", "4000056655665556")
        redis_lib.Redis(port=port, db=19).rpush("planted-list", "x", '{"cvc": "123"}')
        findings, databases, keys = pci_scan.scan_redis(url)
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert (databases, keys) == (20, 3)
    assert sorted(f.where.split(":")[0] + " " + f.what.split(" at byte")[0] for f in findings) == [
        "redis db 19 CVC field 'cvc'", "redis db 7 PAN ending 5556"]


def test_e2e_genesys_traces_are_scanned(state_dir):
    """Each e2e stack (one per xdist worker that ran e2e tests: ``e2e``, ``e2e-gw1``...) leaves the emulator's
    record file and its state dump in its logs (scanned below)."""
    stacks = sorted(d / "logs" for d in state_dir.glob("e2e*") if (d / "logs").is_dir())
    if not stacks:
        pytest.skip("the e2e suite did not run")
    for logs in stacks:
        assert (logs / "callbacks.jsonl").is_file() and (logs / "genesys-state.json").is_file(), logs
        for html in logs.glob("agent-view-*.html"):
            assert 'id="agent-status"' in html.read_text(encoding="utf-8")


def test_no_card_data_anywhere(state_dir):
    findings, files = pci_scan.scan_files(state_dir)
    assert files > 0
    cells = 0
    sqlite_dir = state_dir / "sqlite"
    for db_file in sorted(state_dir.rglob("*.sqlite3")):
        f, n = pci_scan.scan_database(f"sqlite:///{db_file}")
        findings += f
        cells += n
    pg = os.environ.get("PAYGATE_TEST_PG_URL")
    if pg:
        admin = create_engine(pg)
        with admin.connect() as conn:
            names = conn.execute(text("SELECT datname FROM pg_database WHERE datname LIKE 'paygate_%'")).scalars().all()
        admin.dispose()
        for name in names:
            f, n = pci_scan.scan_database(pg.rsplit("/", 1)[0] + "/" + name)
            findings += f
            cells += n
    del sqlite_dir
    clusters = pci_scan.stopped_postgres_clusters(state_dir, PGBIN) if (PGBIN / "pg_ctl").exists() else []
    for data in clusters:  # private clusters tests stopped (tests/faultstack.py): started again to be read
        with pci_scan.started_cluster(data, PGBIN) as urls:
            for url in urls:
                f, n = pci_scan.scan_database(url)
                findings += f
                cells += n
    redis_url = os.environ.get("PAYGATE_TEST_REDIS_URL")
    if redis_url:
        f, databases, keys = pci_scan.scan_redis(redis_url)
        findings += f
        print(f"PCI scan: {keys} keys in {databases} Redis databases")
    report = "\n".join(str(f) for f in findings[:50])
    assert not findings, f"card data found outside the vault ciphertext:\n{report}"
    print(f"PCI scan: {files} files, {cells} database cells ({len(clusters)} stopped PostgreSQL clusters started "
          "again for it), no PAN or CVC found")
