"""Observed upstream health per model: moving averages and a circuit breaker.

Why per process and keyed by model id: health is what *this* replica saw on its own
connections, it must be updated on every response without I/O, and it must survive config
reloads (a reload that re-creates a model must not forget that it is down).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

ALPHA = 0.2
"""EWMA weight of the newest observation: about the last ten requests dominate."""

CLOSED, OPEN, HALF_OPEN = 0, 1, 2


@dataclass
class ModelHealth:
    latency_ms: float | None = None
    success: float | None = None
    consecutive_failures: int = 0
    state: int = CLOSED
    opened_at: float = 0.0
    trial_in_flight: bool = False

    def allow(self, open_seconds: float, now: float | None = None) -> bool:
        """Whether a request may go to this model now. After `open_seconds` an open circuit
        lets exactly one trial request through (half-open)."""
        if self.state == CLOSED:
            return True
        now = time.monotonic() if now is None else now
        if self.state == OPEN and now - self.opened_at >= open_seconds:
            self.state = HALF_OPEN
            self.trial_in_flight = False
        if self.state == HALF_OPEN and not self.trial_in_flight:
            self.trial_in_flight = True
            return True
        return False

    def record_success(self, latency_ms: float) -> None:
        self.latency_ms = (
            latency_ms if self.latency_ms is None else (1 - ALPHA) * self.latency_ms + ALPHA * latency_ms
        )
        self.success = 1.0 if self.success is None else (1 - ALPHA) * self.success + ALPHA
        self.consecutive_failures = 0
        self.state = CLOSED
        self.trial_in_flight = False

    def record_failure(self, threshold: int, now: float | None = None) -> None:
        self.success = 0.0 if self.success is None else (1 - ALPHA) * self.success
        self.consecutive_failures += 1
        if self.state == HALF_OPEN or self.consecutive_failures >= threshold:
            self.state = OPEN
            self.opened_at = time.monotonic() if now is None else now
            self.trial_in_flight = False

    def release_trial(self) -> None:
        """A half-open trial that ended with neither verdict (the client went away)."""
        self.trial_in_flight = False


class HealthBook:
    def __init__(self) -> None:
        self._by_model: dict[str, ModelHealth] = {}

    def get(self, model_id: str) -> ModelHealth:
        health = self._by_model.get(model_id)
        if health is None:
            health = self._by_model[model_id] = ModelHealth()
        return health

    def items(self) -> list[tuple[str, ModelHealth]]:
        return list(self._by_model.items())
