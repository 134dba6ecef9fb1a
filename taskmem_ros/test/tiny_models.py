"""Shared test data for the tiny Qwen3-VL checkpoints (fixtures live in conftest.py)."""

from __future__ import annotations

import json

TAUGHT_MEMORY = "A person in a dark coat walks along the corridor."
TAUGHT_RESPONSE = json.dumps({"entries": [{"kind": "episodic", "text": TAUGHT_MEMORY}]})
