"""Genesys Cloud integration kit shipped with paygate.

``integrations/genesys/data-actions/`` holds the Web Services Data Action exports (Genesys's ``custom-rest-actions``
format) that Architect flows import; :mod:`integrations.genesys.harness` executes them the way the Genesys data
action engine does, so they are proven against the running API without a Genesys org.
"""

from pathlib import Path

DATA_ACTIONS_DIR = Path(__file__).resolve().parent / "data-actions"
"""Folder holding one ``*.json`` export per call a flow makes (plus the custom auth action)."""
