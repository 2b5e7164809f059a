"""Pruning schedules as pure functions of the training step (no tensorflow here).

:class:`PolynomialDecay` is the gradual schedule of Zhu & Gupta (2017), "To prune, or not to
prune", with the parameters of TensorFlow Model Optimization's ``PolynomialDecay``::

    s(t) = s_f + (s_i - s_f) * (1 - (t - t_0) / (t_1 - t_0)) ** power      for t_0 <= t <= t_1

and ``s_i`` before ``t_0``, ``s_f`` after ``t_1``. Masks are recomputed every ``frequency``
steps inside ``[t_0, t_1]``. One deliberate difference from TFMOT: step ``t_1`` itself always
prunes, so the final sparsity is reached exactly even when ``t_1 - t_0`` is not a multiple of
``frequency`` (TFMOT then stops short of ``s_f``).
"""

from __future__ import annotations

from dataclasses import dataclass

from .validation import check_sparsity


def polynomial_sparsity(step: int, initial: float, final: float, begin_step: int, end_step: int,
                        power: float = 3.0) -> float:
    """The target sparsity at ``step``: ``initial`` until ``begin_step``, then a polynomial
    rise that reaches ``final`` at ``end_step`` and stays there."""
    if step <= begin_step:
        return float(initial)
    if step >= end_step:
        return float(final)
    remaining = 1.0 - (step - begin_step) / (end_step - begin_step)
    return float(final + (initial - final) * remaining ** power)


@dataclass(frozen=True)
class PolynomialDecay:
    """Sparsity rising from ``initial_sparsity`` to ``final_sparsity`` between two steps.

    ``schedule(step)`` returns ``(prune_now, sparsity)``: whether the masks are recomputed at
    this step, and the sparsity they are recomputed to. Steps count optimizer updates from 0.
    """

    initial_sparsity: float
    final_sparsity: float
    begin_step: int
    end_step: int
    frequency: int = 100
    power: float = 3.0

    def __post_init__(self) -> None:
        initial, final = check_sparsity(self.initial_sparsity), check_sparsity(self.final_sparsity)
        if initial > final:
            raise ValueError(f"initial_sparsity {initial:g} exceeds final_sparsity {final:g}; "
                             "the schedule only ever removes weights")
        for name in ("begin_step", "end_step", "frequency"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (1 if name == "frequency" else 0):
                raise ValueError(f"{name} must be an integer >= {1 if name == 'frequency' else 0}, found {value!r}")
        if self.end_step <= self.begin_step:
            raise ValueError(f"end_step must come after begin_step, found begin_step={self.begin_step}, "
                             f"end_step={self.end_step}")
        if not (float(self.power) >= 1.0):
            raise ValueError(f"power must be >= 1 (3 in Zhu & Gupta), found {self.power!r}")

    def sparsity(self, step: int) -> float:
        return polynomial_sparsity(step, self.initial_sparsity, self.final_sparsity,
                                   self.begin_step, self.end_step, self.power)

    def prunes_at(self, step: int) -> bool:
        """True on ``begin_step + k * frequency`` within ``[begin_step, end_step]``, and on ``end_step``."""
        if not self.begin_step <= step <= self.end_step:
            return False
        return step == self.end_step or (step - self.begin_step) % self.frequency == 0

    def __call__(self, step: int) -> tuple[bool, float]:
        return self.prunes_at(step), self.sparsity(step)

    def pruning_steps(self) -> list[int]:
        """Every step at which masks are recomputed, in order."""
        steps = list(range(self.begin_step, self.end_step + 1, self.frequency))
        return steps if steps[-1] == self.end_step else steps + [self.end_step]
