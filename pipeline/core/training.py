"""The checkpoint registry: per model, the last checkpoint reported stable.

Training events with ``checkpoint_stable: true`` register their checkpoint; a
rollback command always targets the newest registered one. The registry is part
of the persisted state (entry ``checkpoints:["model"]``), so a restarted
processor still knows where to roll back to.

The training-side *signals* (validation/training loss divergence, forgetting on
legacy data, gradient-norm spikes) are ordinary monitors on ``training.*`` and
``grad_norm:*`` signals (see pipeline.core.signals and pipeline.core.monitor_set).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Checkpoint", "CheckpointRegistry"]

HISTORY = 10


@dataclass(frozen=True, slots=True)
class Checkpoint:
    checkpoint_id: str
    run_id: str
    step: int
    at: int
    topic: str
    offset: int

    def to_state(self) -> dict[str, Any]:
        return {
            "checkpoint_id": self.checkpoint_id,
            "run_id": self.run_id,
            "step": self.step,
            "at": self.at,
            "topic": self.topic,
            "offset": self.offset,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Checkpoint:
        return cls(
            checkpoint_id=str(state["checkpoint_id"]),
            run_id=str(state["run_id"]),
            step=int(state["step"]),
            at=int(state["at"]),
            topic=str(state["topic"]),
            offset=int(state["offset"]),
        )


@dataclass(slots=True)
class CheckpointRegistry:
    """Stable checkpoints of one model, newest last (the last ``HISTORY``)."""

    stable: list[Checkpoint] = field(default_factory=list)

    @property
    def last_stable(self) -> Checkpoint | None:
        return self.stable[-1] if self.stable else None

    def register(self, checkpoint: Checkpoint) -> bool:
        """Record a stable checkpoint; False when it is already the newest one."""
        if self.stable and self.stable[-1].checkpoint_id == checkpoint.checkpoint_id:
            return False
        self.stable = [c for c in self.stable if c.checkpoint_id != checkpoint.checkpoint_id]
        self.stable.append(checkpoint)
        del self.stable[:-HISTORY]
        return True

    def to_state(self) -> dict[str, Any]:
        return {"stable": [c.to_state() for c in self.stable]}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> CheckpointRegistry:
        return cls([Checkpoint.from_state(c) for c in state["stable"]])
