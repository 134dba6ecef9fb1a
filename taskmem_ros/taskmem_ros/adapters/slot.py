"""The one place the active adapter of a loaded model lives.

The generation engine holds ``slot.lock`` around each generate call and the LoadAdapter
service calls ``swap``, so a swap lands between batches, never inside one. A swap either
completes or leaves the model exactly as it was (rollback), and always reports why.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .artifact import AdapterMeta, adapter_kind, verify
from .base import Adapter
from .errors import AdapterError

log = logging.getLogger(__name__)


def open_adapter(path: str | Path) -> Adapter:
    """Read, validate and load (not attach) the adapter at ``path``: a steering file or a LoRA dir."""
    if adapter_kind(path) == "steering":
        from .steering import SteeringAdapter

        return SteeringAdapter.load(path)
    from .lora import LoraAdapter

    return LoraAdapter.load(path)


def _id(meta: AdapterMeta | None) -> str:
    return meta.adapter_id if meta is not None else ""


class AdapterSlot:
    """Holds at most one adapter on ``model``; thread-safe swaps with rollback."""

    def __init__(self, model: Any, *, base_model: str, hidden_size: int, num_layers: int) -> None:
        self.model = model
        self.base_model = base_model
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.lock = threading.RLock()
        self._adapter: Adapter | None = None

    @property
    def active(self) -> AdapterMeta | None:
        adapter = self._adapter
        return adapter.meta if adapter is not None else None

    @property
    def adapter_id(self) -> str:
        return _id(self.active)

    def swap(self, path: str | Path, expected_sha256: str = "") -> tuple[AdapterMeta | None, AdapterMeta | None]:
        """Make the adapter at ``path`` the active one ("" = base model); returns (previous, active).

        Any failure (unreadable, wrong checksum or base model, does not fit) leaves the previous
        adapter attached and raises AdapterError.
        """
        with self.lock:
            old = self._adapter
            previous = old.meta if old is not None else None
            if not str(path):
                if old is not None:
                    self._detach_or_raise(old)
                self._adapter = None
                log.info("adapter unloaded (was %r); base model active", _id(previous))
                return previous, None
            new: Adapter | None = None
            old_detached = False
            try:
                new = open_adapter(path)
                verify(
                    new.meta,
                    expected_sha256=expected_sha256,
                    base_model=self.base_model,
                    hidden_size=self.hidden_size,
                    num_layers=self.num_layers,
                )
                if old is not None:
                    old.detach()
                    old_detached = True
                new.attach(self.model)
            except Exception as exc:
                self._rollback(old, new, old_detached)
                if isinstance(exc, AdapterError):
                    log.warning("adapter swap to %r refused: %s", str(path), exc)
                    raise
                log.exception("adapter swap to %r failed", str(path))
                raise AdapterError(f"loading adapter {str(path)!r} failed: {type(exc).__name__}: {exc}") from exc
            self._adapter = new
            log.info("adapter %r active (was %r)", new.meta.adapter_id, _id(previous))
            return previous, new.meta

    def _detach_or_raise(self, adapter: Adapter) -> None:
        try:
            adapter.detach()
        except AdapterError:
            raise
        except Exception as exc:
            raise AdapterError(f"detaching adapter {adapter.meta.adapter_id!r} failed: {exc}") from exc

    def _rollback(self, old: Adapter | None, new: Adapter | None, old_detached: bool) -> None:
        try:
            if new is not None and new.attached:
                new.detach()
            if old is not None and old_detached:
                old.attach(self.model)
        except Exception as exc:  # the model state is unknown: say so loudly, keep no stale claim
            self._adapter = None
            raise AdapterError(
                f"rollback to adapter {_id(old.meta if old else None)!r} failed ({exc}); "
                "the model may be in an inconsistent state, reload it"
            ) from exc

    @contextmanager
    def suspended(self) -> Iterator[None]:
        """Use the base model for a while (answerer), holding the lock so no swap interleaves."""
        with self.lock:
            adapter = self._adapter
            if adapter is None:
                yield
                return
            with adapter.suspended():
                yield
