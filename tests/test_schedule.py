"""sparsenet.schedule: the polynomial-decay pruning schedule as a pure function of the step."""

import numpy as np
import pytest

from sparsenet.schedule import PolynomialDecay, polynomial_sparsity


def test_values_at_begin_end_and_outside():
    s = PolynomialDecay(0.1, 0.9, begin_step=100, end_step=1100, frequency=100)
    assert s.sparsity(0) == 0.1
    assert s.sparsity(100) == 0.1
    assert s.sparsity(1100) == 0.9
    assert s.sparsity(5000) == 0.9


@pytest.mark.parametrize("power", [1, 2, 3])
def test_values_between_follow_the_polynomial(power):
    s = PolynomialDecay(0.0, 0.8, begin_step=0, end_step=1000, frequency=10, power=power)
    for step, done in ((250, 0.25), (500, 0.5), (900, 0.9)):
        assert s.sparsity(step) == pytest.approx(0.8 + (0.0 - 0.8) * (1 - done) ** power, abs=1e-12)


def test_cubic_rises_fast_then_slowly():
    """Zhu & Gupta's point: prune hard early while the network is redundant, gently near the end."""
    s = PolynomialDecay(0.0, 0.9, 0, 1000, power=3)
    values = np.array([s.sparsity(t) for t in range(0, 1001, 50)])
    steps = np.diff(values)
    assert (steps >= 0).all()
    assert steps[0] > 5 * steps[-1]
    assert s.sparsity(500) == pytest.approx(0.9 * (1 - 0.5 ** 3))


def test_frequency_picks_pruning_steps():
    s = PolynomialDecay(0.0, 0.5, begin_step=10, end_step=45, frequency=10)
    assert [t for t in range(0, 60) if s.prunes_at(t)] == [10, 20, 30, 40, 45]
    assert s.pruning_steps() == [10, 20, 30, 40, 45]
    assert s(20) == (True, s.sparsity(20))
    assert s(21) == (False, s.sparsity(21))


def test_end_step_on_the_grid_is_listed_once():
    s = PolynomialDecay(0.0, 0.5, begin_step=0, end_step=40, frequency=10)
    assert s.pruning_steps() == [0, 10, 20, 30, 40]


def test_last_pruning_step_reaches_the_final_sparsity_exactly():
    s = PolynomialDecay(0.2, 0.95, begin_step=3, end_step=998, frequency=100)
    last = s.pruning_steps()[-1]
    assert last == 998 and s.sparsity(last) == 0.95


def test_function_and_class_agree():
    s = PolynomialDecay(0.05, 0.97, 7, 707, frequency=3, power=2)
    for step in range(0, 800, 13):
        assert s.sparsity(step) == polynomial_sparsity(step, 0.05, 0.97, 7, 707, 2)


@pytest.mark.parametrize("kwargs, match", [
    ({"initial_sparsity": 0.5, "final_sparsity": 0.4}, "initial_sparsity 0.5 exceeds"),
    ({"final_sparsity": 1.0}, r"sparsity must be in \[0, 1\)"),
    ({"final_sparsity": 90}, "0.9 means 90%"),
    ({"begin_step": 10, "end_step": 10}, "end_step must come after begin_step"),
    ({"begin_step": -1}, "begin_step must be an integer >= 0"),
    ({"frequency": 0}, "frequency must be an integer >= 1"),
    ({"end_step": 10.5}, "end_step must be an integer"),
    ({"power": 0.5}, "power must be >= 1"),
])
def test_bad_parameters_are_named(kwargs, match):
    args = {"initial_sparsity": 0.0, "final_sparsity": 0.9, "begin_step": 0, "end_step": 100, **kwargs}
    with pytest.raises(ValueError, match=match):
        PolynomialDecay(**args)
