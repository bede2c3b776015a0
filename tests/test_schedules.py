import math

import numpy as np
import pytest

from fastmlp import schedules as S


def test_constant():
    s = S.Constant(0.01)
    assert [s(k) for k in (0, 1, 10**9)] == [0.01] * 3
    assert repr(s) == "Constant(lr=0.01)"


@pytest.mark.parametrize("step,expected", [
    (0, 0.1), (1, 0.1 * 0.5 ** (1 / 4)), (3, 0.1 * 0.5 ** 0.75), (4, 0.05),
    (6, 0.1 * 0.5 ** 1.5), (8, 0.025), (100, 0.1 * 0.5 ** 25)])
def test_exponential_decay_smooth(step, expected):
    s = S.ExponentialDecay(0.1, decay_steps=4, decay_rate=0.5)
    assert s(step) == pytest.approx(expected, rel=1e-15)


@pytest.mark.parametrize("step,expected", [
    (0, 0.1), (1, 0.1), (3, 0.1), (4, 0.05), (5, 0.05), (7, 0.05), (8, 0.025), (11, 0.025),
    (12, 0.0125)])
def test_exponential_decay_staircase_boundaries(step, expected):
    s = S.ExponentialDecay(0.1, decay_steps=4, decay_rate=0.5, staircase=True)
    assert s(step) == pytest.approx(expected, rel=1e-15)


def test_exponential_decay_seed_example():
    # The seeds: tf.train.exponential_decay(0.1, global_step, 10000, 1/10).
    s = S.ExponentialDecay(0.1, 10000, 1 / 10)
    assert s(0) == 0.1
    assert s(10000) == pytest.approx(0.01, rel=1e-12)
    assert s(5000) == pytest.approx(0.1 / math.sqrt(10), rel=1e-12)
    assert repr(s) == ("ExponentialDecay(initial_lr=0.1, decay_steps=10000, decay_rate=0.1, "
                       "staircase=False)")


@pytest.mark.parametrize("step,expected", [
    (0, 1.0), (2, 1.0), (3, 0.1), (5, 0.1), (6, 0.01), (9, 0.001)])
def test_step_decay(step, expected):
    s = S.StepDecay(1.0, step_size=3)
    assert s(step) == pytest.approx(expected, rel=1e-12)
    assert repr(s) == "StepDecay(initial_lr=1.0, step_size=3, gamma=0.1)"


@pytest.mark.parametrize("step", [0, 1, 25, 50, 75, 99, 100, 101, 1000])
@pytest.mark.parametrize("alpha", [0.0, 0.2])
def test_cosine_decay(step, alpha):
    s = S.CosineDecay(0.5, decay_steps=100, alpha=alpha)
    t = min(step, 100) / 100
    expected = 0.5 * ((1 - alpha) * 0.5 * (1 + math.cos(math.pi * t)) + alpha)
    assert s(step) == pytest.approx(expected, rel=1e-15, abs=1e-17)


def test_cosine_decay_landmarks():
    s = S.CosineDecay(0.5, decay_steps=100, alpha=0.2)
    assert s(0) == 0.5
    assert s(50) == pytest.approx(0.5 * (0.8 * 0.5 + 0.2))
    assert s(100) == s(5000) == pytest.approx(0.1)
    assert repr(s) == "CosineDecay(initial_lr=0.5, decay_steps=100, alpha=0.2)"


def test_warmup_into_a_constant():
    s = S.Warmup(0.4, warmup_steps=4)
    assert [s(k) for k in range(7)] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.4, 0.4, 0.4])


def test_warmup_into_a_schedule_restarts_its_clock():
    after = S.StepDecay(1.0, step_size=2, gamma=0.5)
    s = S.Warmup(after, warmup_steps=2)
    assert [s(k) for k in range(7)] == pytest.approx([0.5, 1.0, 1.0, 1.0, 0.5, 0.5, 0.25])
    assert s.after is after
    assert repr(s) == ("Warmup(after=StepDecay(initial_lr=1.0, step_size=2, gamma=0.5), "
                       "warmup_steps=2)")


def test_warmup_after_a_callable_is_checked():
    s = S.Warmup(lambda k: -1.0, warmup_steps=2)
    with pytest.raises(ValueError, match=r"after: <lambda>\(0\) returned -1.0"):
        s(0)


def test_as_schedule():
    c = S.as_schedule(0.01)
    assert isinstance(c, S.Constant) and c(5) == 0.01
    assert S.as_schedule(np.float32(0.5))(0) == 0.5
    assert S.as_schedule(3)(0) == 3.0
    e = S.ExponentialDecay(0.1, 10, 0.5)
    assert S.as_schedule(e) is e
    f = S.as_schedule(lambda k: 1.0 / (k + 1))
    assert f(0) == 1.0 and f(3) == 0.25
    assert isinstance(f(3), float)


def test_schedules_return_python_floats_for_numpy_steps():
    for s in (S.Constant(1), S.ExponentialDecay(1, 3, 0.5, True), S.StepDecay(1, 2),
              S.CosineDecay(1, 5), S.Warmup(1, 3), S.as_schedule(lambda k: np.float32(0.5))):
        v = s(np.int64(4))
        assert type(v) is float and v >= 0


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -0.1, "0.1", None, True])
def test_callable_schedule_values_are_validated_lazily(bad):
    s = S.as_schedule(lambda k: 0.1 if k < 3 else bad)  # built without calling it
    assert s(2) == 0.1
    with pytest.raises(ValueError, match=r"lr: <lambda>\(3\) returned .*finite float >= 0"):
        s(3)


def test_as_schedule_rejects_bad_learning_rates():
    with pytest.raises(ValueError, match="lr: expected >= 0.0, got -0.1"):
        S.as_schedule(-0.1)
    with pytest.raises(ValueError, match="lr: expected a finite number"):
        S.as_schedule(float("nan"))
    for bad in ("0.1", None, True, [0.1]):
        with pytest.raises(TypeError, match="lr: expected a learning rate"):
            S.as_schedule(bad)
    with pytest.raises(TypeError, match="learning_rate: expected"):
        S.as_schedule("x", argname="learning_rate")


@pytest.mark.parametrize("bad,exc,match", [
    (-1, ValueError, "step: expected a non-negative integer"),
    (1.0, TypeError, "step: expected a non-negative integer"),
    (True, TypeError, "step: expected a non-negative integer"),
])
def test_step_is_validated(bad, exc, match):
    for s in (S.Constant(0.1), S.as_schedule(lambda k: 0.1), S.Warmup(0.1, 2)):
        with pytest.raises(exc, match=match):
            s(bad)


@pytest.mark.parametrize("make,exc,match", [
    (lambda: S.ExponentialDecay(-0.1, 10, 0.5), ValueError, "initial_lr: expected >= 0.0"),
    (lambda: S.ExponentialDecay(0.1, 0, 0.5), ValueError, "decay_steps: expected a positive"),
    (lambda: S.ExponentialDecay(0.1, 10.0, 0.5), TypeError, "decay_steps: expected a positive"),
    (lambda: S.ExponentialDecay(0.1, 10, 0.0), ValueError, "decay_rate: expected > 0.0"),
    (lambda: S.ExponentialDecay(0.1, 10, 10.0), ValueError, "decay_rate: expected <= 1.0"),
    (lambda: S.ExponentialDecay(0.1, 10, 0.5, staircase=1), TypeError, "staircase: expected"),
    (lambda: S.StepDecay(0.1, -2), ValueError, "step_size: expected a positive integer"),
    (lambda: S.StepDecay(0.1, 2, gamma=1.5), ValueError, "gamma: expected <= 1.0"),
    (lambda: S.StepDecay(float("inf"), 2), ValueError, "initial_lr: expected a finite"),
    (lambda: S.CosineDecay(0.1, 0), ValueError, "decay_steps: expected a positive"),
    (lambda: S.CosineDecay(0.1, 10, alpha=-0.1), ValueError, "alpha: expected >= 0.0"),
    (lambda: S.CosineDecay(0.1, 10, alpha=2), ValueError, "alpha: expected <= 1.0"),
    (lambda: S.Warmup(0.1, 0), ValueError, "warmup_steps: expected a positive integer"),
    (lambda: S.Warmup(-0.1, 3), ValueError, "after: expected >= 0.0"),
    (lambda: S.Warmup("fast", 3), TypeError, "after: expected a learning rate"),
    (lambda: S.Constant(-1), ValueError, "lr: expected >= 0.0"),
])
def test_bad_arguments(make, exc, match):
    with pytest.raises(exc, match=match):
        make()
