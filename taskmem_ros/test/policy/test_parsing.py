"""Model output is untrusted: every repair and every rejection is exercised and counted."""

from __future__ import annotations

import json

import pytest

from taskmem_ros.policy.parsing import parse_entries


def parse(text: str, **kw: object):  # type: ignore[no-untyped-def]
    opts = {"max_entries": 8, "max_chars": 80, "context": ()}
    opts.update(kw)
    return parse_entries(text, **opts)  # type: ignore[arg-type]


def test_clean_output() -> None:
    out = parse(
        '{"entries": [{"kind": "semantic", "text": "Bob keeps keys in the drawer.", "start_s": 1, "end_s": 3}]}'
    )
    assert out.ok and [(e.kind, e.text, e.start_s, e.end_s) for e in out.entries] == [
        ("semantic", "Bob keeps keys in the drawer.", 1.0, 3.0)
    ]
    assert out.counts["policy_entries_accepted"] == 1 and out.counts["policy_malformed_outputs"] == 0


def test_think_blocks_fences_and_prose_are_stripped() -> None:
    text = (
        '<think>the user wants json {"entries": []}</think>Sure!\n'
        '```json\n{"entries": [{"kind": "episodic", "text": "A door opens."}]}\n```\nDone.'
    )
    out = parse(text)
    assert [e.text for e in out.entries] == ["A door opens."]
    assert out.counts["policy_think_stripped"] == 1


def test_trailing_commas_and_smart_quotes_are_repaired() -> None:
    out = parse('{"entries": [{"kind": "episodic", "text": "A cup falls.",},]}')
    assert [e.text for e in out.entries] == ["A cup falls."] and out.counts["policy_repaired_outputs"] == 1


def test_output_cut_at_token_limit_keeps_complete_entries() -> None:
    text = '{"entries": [{"kind": "episodic", "text": "One."}, {"kind": "episodic", "text": "Two."}, {"kind": "epis'
    out = parse(text)
    assert [e.text for e in out.entries] == ["One.", "Two."]
    assert out.counts["policy_repaired_outputs"] == 1


@pytest.mark.parametrize("text", ["", "no json here", "{{{{", '{"entries": 5}', "[1, 2", "\x00\x01", "null"])
def test_garbage_is_counted_not_raised(text: str) -> None:
    out = parse(text)
    assert not out.entries
    assert out.counts["policy_malformed_outputs"] + out.counts["policy_entries_invalid"] >= 1


def test_caps_duplicates_context_and_limits() -> None:
    entries = [
        {"kind": "episodic", "text": "A man opens the fridge."},
        {"kind": "episodic", "text": "a man opens the FRIDGE!"},  # duplicate after normalisation
        {"kind": "episodic", "text": "The robot is charging."},  # already in context
        {"kind": "episodic", "text": "   "},  # empty
        {"kind": "weird", "text": "Kind gets coerced."},
        {"kind": "episodic", "text": "word " * 40},  # too long: cut at a word boundary
        {"kind": "episodic", "text": "Over the limit."},
        {"kind": "episodic", "text": 12},
    ]
    out = parse(json.dumps({"entries": entries}), max_entries=3, context=("The robot is charging.",))
    texts = [e.text for e in out.entries]
    assert texts[:2] == ["A man opens the fridge.", "Kind gets coerced."]
    assert len(texts) == 3 and texts[2].endswith("...") and len(texts[2]) <= 83
    c = out.counts
    assert c["policy_entries_duplicate"] == 1
    assert c["policy_entries_repeat_context"] == 1
    assert c["policy_entries_empty"] >= 2  # whitespace text and a non-string text
    assert c["policy_entries_kind_coerced"] == 1
    assert c["policy_entries_truncated"] == 1
    assert c["policy_entries_over_limit"] == 1


def test_other_shapes_are_accepted() -> None:
    assert [e.text for e in parse('["Plain string memory."]').entries] == ["Plain string memory."]
    assert [e.text for e in parse('{"memories": [{"memory": "Alt keys."}]}').entries] == ["Alt keys."]
    nan = parse('{"entries": [{"text": "Bad times.", "start_s": NaN, "end_s": "x"}]}').entries[0]
    assert nan.start_s is None and nan.end_s is None


def test_bullet_list_output_one_memory_per_line() -> None:
    """A small text LLM writes one memory per line (``text_llm`` prompt); the same parser reads it."""
    text = (
        "- Someone said the keys are in the kitchen drawer.\n"
        "- A sign read 'EXIT B2'.\n"
        "- A sign read 'EXIT B2'.\n"  # the model looping on one line
        "* The scene changed at 13 s.\n"
        "- The scene changed at 13 s (still mostly"  # cut at the token limit
    )
    out = parse(text, cut=True)
    assert out.ok and [e.text for e in out.entries] == [
        "Someone said the keys are in the kitchen drawer.",
        "A sign read 'EXIT B2'.",
        "The scene changed at 13 s.",
    ]
    assert all(e.kind == "episodic" for e in out.entries)
    assert out.counts["policy_line_outputs"] == 1 and out.counts["policy_entries_duplicate"] == 1
    assert out.counts["policy_repaired_outputs"] == 1  # the unfinished last line was dropped
    # not cut: the last line is kept; prose between bullets is skipped and counted as a repair
    kept = parse("- Lunch is at one.\nI also saw a cat.\n- The cafe sign.")
    assert [e.text for e in kept.entries] == ["Lunch is at one.", "The cafe sign."]
    assert kept.counts["policy_repaired_outputs"] == 1
    nothing = parse("- none")
    assert nothing.ok and nothing.entries == [] and nothing.counts["policy_malformed_outputs"] == 0
    # prose that does not start with a bullet is no memory list
    prose = parse("The robot's camera detected a person's face. - maybe")
    assert not prose.ok and prose.counts["policy_malformed_outputs"] == 1
