"""The generic repair of LLM output (the entry-level checks are in test/policy/test_parsing.py)."""

from __future__ import annotations

import pytest

from taskmem_ros.llm.json_repair import extract_json, strip_thinking


def test_template_opened_think_block() -> None:
    assert strip_thinking("reasoning here</think>\n{}")[0].strip() == "{}"
    assert strip_thinking("<think>never finished")[0] == ""


def test_extract_json_raises_value_error() -> None:
    with pytest.raises(ValueError):
        extract_json("nothing")


def test_repaired_flag_and_truncation() -> None:
    assert extract_json('{"a": 1}') == ({"a": 1}, False)
    assert extract_json('{"a": [1, 2,],}') == ({"a": [1, 2]}, True)
    assert extract_json('[{"a": 1}, {"a": 2}, {"a"') == ([{"a": 1}, {"a": 2}], True)
