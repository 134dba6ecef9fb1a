"""TaskMem training: Phase One (how to memorize: GRPO on memory quality) and Phase Two (what to
memorize: an adapter tuned on rewards defined by the tasks logged after deployment).

Heavy imports (torch, transformers, peft, trl) happen inside the functions that need them.
"""
