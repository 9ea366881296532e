"""What the parts of a collection share: its files, store, payload index, live index,
training state and options (one object, passed to the writer side and the trainer)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from server.service.checkpoint import Checkpoint, IndexFolder
from server.service.embedders import Embedders
from server.service.live import LiveIndex
from server.service.options import Options
from server.service.payloads import PayloadIndex
from server.service.spec import CollectionSpec
from server.service.store import Store
from server.service.telemetry import Silent, Telemetry


@dataclass
class Training:
    """Training lifecycle: state is "untrained", "training" or "trained"."""

    state: str
    error: str | None = None
    last_duration_s: float | None = None
    started_at: float | None = None
    future: Future[str] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    thread: threading.Thread | None = None
    cancel: threading.Event = field(default_factory=threading.Event)

    def begin(self) -> bool:
        """Mark training started; False when a run is already going."""
        with self.lock:
            if self.state == "training":
                return False
            self.state, self.error, self.started_at = "training", None, time.time()
            self.cancel.clear()
            return True

    def stop(self, timeout_s: float) -> bool:
        """Ask a running training to stop at its next step and wait for its thread; False
        when it was still running after `timeout_s` (a step can take that long)."""
        self.cancel.set()
        thread = self.thread
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout_s)
        return not thread.is_alive()

    def finish(self, trained: bool, error: str | None = None) -> None:
        with self.lock:
            self.state = "trained" if trained else "untrained"
            self.error = error
            if self.started_at is not None:
                self.last_duration_s = time.time() - self.started_at


@dataclass
class CollectionState:
    """Everything one collection is made of (see the module docstring)."""

    name: str
    spec: CollectionSpec
    folder: Path
    store: Store
    payloads: PayloadIndex
    live: LiveIndex
    index_folder: IndexFolder
    checkpoint: Checkpoint | None
    training: Training
    options: Options = field(default_factory=Options)
    telemetry: Telemetry = field(default_factory=Silent)
    embedders: Embedders = field(default_factory=Embedders)
    since_checkpoint: int = 0
