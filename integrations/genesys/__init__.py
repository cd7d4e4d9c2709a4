"""Genesys Cloud integration kit shipped with paygate.

``integrations/genesys/data-actions/`` holds the Web Services Data Action exports (Genesys's ``custom-rest-actions``
format) that Architect flows import, plus two Genesys Cloud Data Actions (``purecloud-data-actions``) the refund
recipe uses; :mod:`integrations.genesys.harness` executes them the way the Genesys data action engine does, so
they are proven against the running API without a Genesys org. ``integrations/genesys/recipes/`` holds the
Architect flows of docs/architect-recipes.md (Archy YAML, one flow per file) and a Process Automation trigger.
"""

from pathlib import Path

DATA_ACTIONS_DIR = Path(__file__).resolve().parent / "data-actions"
"""Folder holding one ``*.json`` export per call a flow makes (plus the custom auth action)."""

RECIPES_DIR = Path(__file__).resolve().parent / "recipes"
"""Folder holding the Architect recipe flows (``*.yaml``, one top-level flow-type key each) and triggers
(``*-trigger.json``)."""
