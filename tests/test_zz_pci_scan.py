"""Runs after every other suite (see tests/conftest.py): proves no PAN or CVC reached a log, Redis, a
database column outside the vault's ciphertext, or a callback body."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import create_engine, text

from tests import pci_scan, services


def test_scanner_finds_planted_card_data(tmp_path):
    (tmp_path / "app.log").write_text('{"event": "x", "number": "4242 4242 4242 4242"}\n{"cvc": "123"}\n')
    findings, files = pci_scan.scan_files(tmp_path)
    assert files == 1
    assert any("PAN ending 4242" in str(f) for f in findings) and any("CVC" in str(f) for f in findings)
    assert pci_scan.scan_bytes("x", b"tok_abc last4=4242 fp_xyz amount=2500") == []


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
