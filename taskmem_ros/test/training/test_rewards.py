"""Phase One rewards on hand-written model outputs."""

from __future__ import annotations

import json
import math

import pytest

from taskmem_ros.config import RewardConfig
from taskmem_ros.store.embedding import HashEmbedder
from taskmem_ros.training.rewards import (
    combined_reward,
    completion_text,
    entry_texts,
    format_reward,
    make_coverage_reward,
    make_fidelity_reward,
    make_length_penalty,
    redundancy_penalty,
    reward_funcs,
    weighted_sum,
)

REFERENCE = "Alice put the red keys on the kitchen table. The meeting is at three. Bob opened the fridge."


def out(*texts: str, kind: str = "episodic") -> str:
    return json.dumps({"entries": [{"kind": kind, "text": t} for t in texts]})


GOOD = out("Alice put the red keys on the kitchen table.", "The meeting is at three.")
REPETITIVE = out("Alice put the red keys on the kitchen table.", "Alice put the red keys on the kitchen table!")
HALLUCINATED = out("A dragon flew over the castle at midnight.", "The submarine surfaced in the harbour.")
OVERLONG = out("Alice put the red keys on the kitchen table " + "and then she talked a lot " * 20)
GARBAGE = "I think the robot saw many things today, hard to say }{ ]"
THINK = "<think>Let me see what happened.</think>" + GOOD
CONVERSATIONAL = [{"role": "assistant", "content": GOOD}]
EMBEDDER = HashEmbedder()


def test_completion_text_accepts_strings_and_messages() -> None:
    assert completion_text(GOOD) == GOOD
    assert completion_text(CONVERSATIONAL) == GOOD
    assert completion_text([{"role": "assistant", "content": [{"type": "text", "text": GOOD}]}]) == GOOD
    assert completion_text(None) == "" and completion_text(42) == ""
    assert entry_texts(GARBAGE) is None
    assert entry_texts(REPETITIVE) == [
        "Alice put the red keys on the kitchen table.",
        "Alice put the red keys on the kitchen table!",
    ]


def test_format_reward() -> None:
    fenced = "Sure! ```json\n" + GOOD + "\n```"
    trailing = '{"entries": [{"kind": "episodic", "text": "Keys on table."},]}'
    truncated = GOOD[:-30]  # cut at the token limit: the first entry survives repair
    scores = format_reward(
        [GOOD, THINK, CONVERSATIONAL, '{"entries": []}', fenced, trailing, truncated, GARBAGE, "", '{"x": 1}']
    )
    assert scores == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.0, 0.0, 0.0]
    # wrong schema but readable (bare list, unknown kind) -> repaired; items none of which is valid -> 0
    assert format_reward(['["Keys on table."]', out("x", kind="weird"), "[1, 2, 3]"]) == [0.5, 0.5, 0.0]
    assert format_reward([None, 3.5, {"role": "assistant"}]) == [0.0, 0.0, 0.0]  # never raises


def test_length_penalty() -> None:
    fn = make_length_penalty(target_chars=60, max_entries=2)
    assert fn.__name__ == "length_penalty"
    good, overlong, garbage = fn([GOOD, OVERLONG, GARBAGE])
    assert good == 0.0 and garbage == 0.0
    assert -2.0 <= overlong < -1.0  # ~540 chars vs 60 target, capped at -2
    longer = out("x" * 90)
    assert fn([longer])[0] == pytest.approx(-0.5)
    too_many = out("a b", "c d", "e f", "g h")
    assert fn([too_many])[0] == pytest.approx(-1.0)  # 2 over a limit of 2


def test_redundancy_penalty() -> None:
    context = [["Bob opened the fridge."]] * 4
    repeat_ctx = out("Bob opened the fridge.", "The meeting is at three.")
    scores = redundancy_penalty([GOOD, REPETITIVE, repeat_ctx, GARBAGE], context=context)
    assert scores == [0.0, -0.5, -0.5, 0.0]
    # near duplicates (Jaccard >= 0.8 on normalised words) count, different facts do not
    near = out("Alice put the red keys on the kitchen table", "Alice put the red keys on the kitchen table today")
    assert redundancy_penalty([near])[0] == -0.5
    assert redundancy_penalty([near], context=None)[0] == -0.5  # missing column tolerated


def test_fidelity_reward() -> None:
    fn = make_fidelity_reward(EMBEDDER, threshold=0.5)
    assert fn.__name__ == "fidelity_reward"
    mixed = out("Alice put the red keys on the kitchen table.", "A dragon flew over the castle.")
    reorder = out("The kitchen table has red keys Alice put there.")  # all content words in the reference
    scores = fn([GOOD, HALLUCINATED, mixed, reorder, GARBAGE, THINK, CONVERSATIONAL], reference=[REFERENCE] * 7)
    assert scores == [1.0, 0.0, 0.5, 1.0, 0.0, 1.0, 1.0]
    assert fn([GOOD], reference=[""]) == [0.0]  # nothing to support it
    assert fn([GOOD], reference=[None]) == [0.0]


def test_coverage_reward() -> None:
    fn = make_coverage_reward(EMBEDDER, threshold=0.5)
    assert fn.__name__ == "coverage_reward"
    all_three = out(
        "Alice put the red keys on the kitchen table.", "The meeting is at three.", "Bob opened the fridge."
    )
    scores = fn([all_three, GOOD, HALLUCINATED, GARBAGE], reference=[REFERENCE] * 4)
    assert scores[0] == 1.0 and scores[1] == pytest.approx(2 / 3) and scores[2] == 0.0 and scores[3] == 0.0
    # explicit facts take precedence over the reference's sentences
    facts = [["The meeting is at three."]]
    assert fn([GOOD], reference=[REFERENCE], facts=facts) == [1.0]
    assert fn([HALLUCINATED], reference=[REFERENCE], facts=facts) == [0.0]


def test_combined_ranks_good_over_bad() -> None:
    cfg = RewardConfig(target_chars=80)
    terms = combined_reward(cfg, EMBEDDER)
    names = [fn.__name__ for fn, _ in terms]
    assert names == ["format_reward", "length_penalty", "redundancy_penalty", "fidelity_reward", "coverage_reward"]
    funcs, weights = reward_funcs(cfg, EMBEDDER)
    assert [f.__name__ for f in funcs] == names and weights == [1.0, 0.3, 0.5, 1.0, 1.0]
    completions = [GOOD, REPETITIVE, HALLUCINATED, OVERLONG, GARBAGE, THINK]
    totals = weighted_sum(terms, completions, reference=[REFERENCE] * 6, context=[[]] * 6)
    assert all(math.isfinite(t) for t in totals)
    good, repetitive, hallucinated, overlong, garbage, think = totals
    assert good == think
    assert good > max(repetitive, hallucinated, overlong, garbage)
    assert garbage == 0.0 and garbage < hallucinated
    # weights of 0 drop the term
    assert len(combined_reward(RewardConfig(length_weight=0.0, coverage_weight=0.0), EMBEDDER)) == 3


def test_paraphrase_supported_with_minilm(minilm) -> None:  # type: ignore[no-untyped-def]
    reference = "Alice said the meeting starts at three o'clock. Bob left his phone in the car."
    paraphrase = out("The meeting begins at 3 pm, according to Alice.")
    unrelated = out("A dog is swimming in the lake.")
    lexical = make_fidelity_reward(HashEmbedder(), threshold=0.5)
    semantic = make_fidelity_reward(minilm, threshold=0.5)
    assert lexical([paraphrase], reference=[reference]) == [0.0]  # different words: hashing misses it
    assert semantic([paraphrase, unrelated], reference=[reference] * 2) == [1.0, 0.0]


def test_read_supported() -> None:
    from taskmem_ros.training.rewards import read_supported

    assert read_supported('{"supported": [1, 3]}', 3) == {1, 3}
    assert read_supported('<think>hmm</think>{"supported": [2, 9, "x", true]}', 3) == {2}
    assert read_supported("[1]", 2) == {1}
    assert read_supported("none of them", 2) is None


def test_judge_fidelity_reward_with_a_real_tiny_judge(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A tiny Qwen3-VL taught to call only the first statement supported: the reward is the
    supported share; a random-weight judge's unreadable output scores 0 and is counted."""
    from taskmem_ros.config import ModelConfig
    from taskmem_ros.llm.tiny import build_tiny_qwen3vl, synthetic_clip, teach
    from taskmem_ros.llm.transformers_engine import TransformersEngine
    from taskmem_ros.training.rewards import judge_fidelity_messages, make_judge_fidelity_reward

    clips = [synthetic_clip(i, "The keys are on the table.") for i in range(2)]
    entries = ["The keys are on the table.", "A dragon flies over the house."]
    completion = json.dumps({"entries": [{"kind": "episodic", "text": e} for e in entries]})
    model = build_tiny_qwen3vl(tmp_path / "judge", seed=0)
    cfg = ModelConfig(model_id=str(model), device_map="cpu", max_pixels=64 * 64)
    raw = make_judge_fidelity_reward(TransformersEngine(cfg), clips)
    assert raw([completion], clip_index=[0]) == [0.0] and raw.stats["judge_fidelity_unreadable"] == 1  # type: ignore[attr-defined]
    teach(
        model,
        [(judge_fidelity_messages(c, entries), '{"supported": [1]}') for c in clips],
        steps=40,
        max_pixels=64 * 64,
    )
    reward = make_judge_fidelity_reward(TransformersEngine(cfg), clips)
    assert reward([completion, completion, "garbage"], clip_index=[0, 1, 0]) == [0.5, 0.5, 0.0]


def test_bullet_lists_are_scored_like_json_lists() -> None:
    """The text LLM's one-memory-per-line output: valid only if every line is a bullet and none repeats."""
    lines = "- Alice put the red keys on the kitchen table.\n- The meeting is at three."
    looping = "- The meeting is at three.\n- The meeting is at three.\n- The meeting is at three."
    mixed = "- The meeting is at three.\nAnd more prose here."
    assert format_reward([lines, "- none", looping, mixed, "no bullets at all"]) == [1.0, 1.0, 0.5, 0.5, 0.0]
    assert entry_texts(lines) == ["Alice put the red keys on the kitchen table.", "The meeting is at three."]
    assert redundancy_penalty([looping], context=[[]])[0] < redundancy_penalty([lines], context=[[]])[0]
    kw = {"reference": [REFERENCE], "facts": [None], "context": [[]]}
    assert make_fidelity_reward(EMBEDDER)([lines], **kw) == make_fidelity_reward(EMBEDDER)([GOOD], **kw)
