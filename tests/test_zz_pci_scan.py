"""Runs after every other suite (see tests/conftest.py): proves no PAN or CVC reached a log, Redis, a
database column outside the vault's ciphertext, a callback body, a body written to the Genesys
emulator, the emulator's state (secure flow steps included) or a saved agent view."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import create_engine, text

from tests import pci_scan


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


def test_e2e_genesys_traces_are_scanned(state_dir):
    """The e2e stack leaves the emulator's record file and its state dump in its logs (scanned below)."""
    logs = state_dir / "e2e" / "logs"
    if not logs.is_dir():
        pytest.skip("the e2e suite did not run")
    assert (logs / "callbacks.jsonl").is_file() and (logs / "genesys-state.json").is_file()
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
    report = "\n".join(str(f) for f in findings[:50])
    assert not findings, f"card data found outside the vault ciphertext:\n{report}"
    print(f"PCI scan: {files} files, {cells} database cells, no PAN or CVC found")
