import math

import numpy as np
import pytest

from fastmlp import initializers as I

FAN_IN, FAN_OUT = 2000, 1000
N = FAN_IN * FAN_OUT
# The sample std of N normal draws has relative error ~ 1/sqrt(2N) = 5e-4; allow 10 of those.
STD_RTOL = 10 / math.sqrt(2 * N)

# name -> (distribution, std or limit) for the 2000x1000 matrix, straight from the formulas.
EXPECTED = {
    "normal": ("normal", 0.05),
    "uniform": ("uniform", 0.05),
    "fan_in": ("normal", 1 / math.sqrt(FAN_IN)),
    "glorot_normal": ("normal", math.sqrt(2 / (FAN_IN + FAN_OUT))),
    "glorot_uniform": ("uniform", math.sqrt(6 / (FAN_IN + FAN_OUT))),
    "he_normal": ("normal", math.sqrt(2 / FAN_IN)),
    "he_uniform": ("uniform", math.sqrt(6 / FAN_IN)),
    "lecun_normal": ("normal", math.sqrt(1 / FAN_IN)),
    "lecun_uniform": ("uniform", math.sqrt(3 / FAN_IN)),
}


def rng(seed=0):
    return np.random.default_rng(seed)


def check_distribution(w, dist, param):
    assert w.dtype == np.float32 and w.shape == (FAN_IN, FAN_OUT) and w.flags.c_contiguous
    w64 = w.astype(np.float64)
    std = param if dist == "normal" else param / math.sqrt(3)
    assert abs(w64.mean()) < 6 * std / math.sqrt(N), f"mean {w64.mean()} (std {std})"
    assert w64.std() == pytest.approx(std, rel=STD_RTOL)
    if dist == "uniform":
        assert np.abs(w).max() <= np.float32(param)
        # The largest of 2e6 uniform draws lies within ~1e-5 of the limit.
        assert np.abs(w).max() == pytest.approx(param, rel=1e-4)
    else:
        # A normal, not truncated: 2e6 draws go past 4 std about 127 times.
        assert np.abs(w64).max() > 4 * std


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_empirical_std_and_limits_match_the_formulas(name):
    dist, param = EXPECTED[name]
    check_distribution(I.initialize(name, FAN_IN, FAN_OUT, rng()), dist, param)


@pytest.mark.parametrize("name", ["glorot_normal", "he_uniform", "lecun_normal", "fan_in"])
def test_scale_multiplies_the_variance_for_variance_scaling(name):
    dist, param = EXPECTED[name]
    w = I.initialize(name, FAN_IN, FAN_OUT, rng(), scale=3.0)
    check_distribution(w, dist, param * math.sqrt(3.0))


def test_he_normal_with_half_scale_is_lecun_normal_bitwise():
    a = I.initialize("he_normal", 64, 32, rng(5), scale=0.5)
    b = I.initialize("lecun_normal", 64, 32, rng(5))
    np.testing.assert_array_equal(a, b)


def test_normal_uniform_truncated_scale_is_std_or_limit():
    check_distribution(I.initialize("normal", FAN_IN, FAN_OUT, rng(), scale=0.2), "normal", 0.2)
    check_distribution(I.initialize("uniform", FAN_IN, FAN_OUT, rng(), scale=0.3), "uniform", 0.3)


@pytest.mark.parametrize("scale", [None, 0.7])
def test_truncated_normal_never_exceeds_two_std(scale):
    std = 0.05 if scale is None else scale
    w = I.initialize("truncated_normal", FAN_IN, FAN_OUT, rng(), scale=scale)
    assert np.abs(w).max() <= np.float32(2 * std)
    # Draws come right up to the cut, and the std is that of N(0,1) truncated to [-2, 2]:
    # sqrt(1 - 2*2*phi(2)/(2*Phi(2)-1)) = 0.879626.
    assert np.abs(w).max() > 0.999 * 2 * std
    assert w.astype(np.float64).std() == pytest.approx(0.8796256610342398 * std, rel=STD_RTOL)


def test_zeros_and_constant():
    np.testing.assert_array_equal(I.initialize("zeros", 3, 4, rng()), np.zeros((3, 4), np.float32))
    np.testing.assert_array_equal(I.initialize("constant", 3, 4, rng()),
                                  np.zeros((3, 4), np.float32))
    w = I.initialize("constant", 3, 4, rng(), scale=0.25)
    assert w.dtype == np.float32 and (w == 0.25).all()


@pytest.mark.parametrize("name", I.INITIALIZERS + tuple(I.ALIASES))
def test_seeded_draws_are_reproducible_and_shaped(name):
    a = I.initialize(name, 17, 9, rng(42))
    b = I.initialize(name, 17, 9, rng(42))
    assert a.shape == (17, 9) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    if name not in ("zeros", "constant"):
        assert not np.array_equal(a, I.initialize(name, 17, 9, rng(43)))


def test_fan_in_is_the_seeds_rule():
    # The seeds draw np.random.randn(n_in, n_out) / np.sqrt(n_in).
    g = rng(3)
    expected = (g.standard_normal((8, 5)) / np.sqrt(8)).astype(np.float32)
    np.testing.assert_array_equal(I.initialize("fan_in", 8, 5, rng(3)), expected)


@pytest.mark.parametrize("alias,canonical", sorted(I.ALIASES.items()))
def test_aliases(alias, canonical):
    assert I.canonical_init(alias) == canonical
    np.testing.assert_array_equal(I.initialize(alias, 20, 10, rng(1)),
                                  I.initialize(canonical, 20, 10, rng(1)))


def test_canonical_names_map_to_themselves():
    assert set(I.ALIASES.values()) <= set(I.INITIALIZERS)
    for name in I.INITIALIZERS:
        assert I.canonical_init(name) == name


@pytest.mark.parametrize("activation,expected", [
    ("relu", "he_normal"), ("leaky_relu", "he_normal"), ("elu", "he_normal"),
    ("gelu", "he_normal"), ("selu", "lecun_normal"), ("identity", "glorot_uniform"),
    ("sigmoid", "glorot_uniform"), ("tanh", "glorot_uniform"), ("softmax", "glorot_uniform")])
def test_default_rule(activation, expected):
    assert I.default_init(activation) == expected


def test_default_init_rejects_unknown_activation():
    with pytest.raises(ValueError, match=r"activation: expected one of .*relu.*got 'swish'"):
        I.default_init("swish")
    with pytest.raises(ValueError, match="activation:"):
        I.default_init(None)


def test_unknown_name_lists_the_accepted_ones():
    with pytest.raises(ValueError, match=r"init: unknown initializer 'he'; expected one of "
                                         r"zeros, .*lecun_uniform, xavier_normal"):
        I.canonical_init("he")
    with pytest.raises(ValueError, match=r"init: unknown initializer 'Glorot_Uniform'"):
        I.initialize("Glorot_Uniform", 2, 2, rng())
    with pytest.raises(ValueError, match=r"layers\[1\]\.init: unknown"):
        I.canonical_init("x", argname="layers[1].init")


def test_non_string_name_is_a_type_error():
    for bad in (None, 3, b"he_normal"):
        with pytest.raises(TypeError, match="init: expected an initializer name"):
            I.canonical_init(bad)
    with pytest.raises(TypeError, match="init: expected an initializer name"):
        I.initialize(1.0, 2, 2, rng())


@pytest.mark.parametrize("fan_in,fan_out,exc,match", [
    (0, 3, ValueError, "fan_in: expected a positive integer, got 0"),
    (3, -1, ValueError, "fan_out: expected a positive integer, got -1"),
    (2.0, 3, TypeError, "fan_in: expected a positive integer"),
    (True, 3, TypeError, "fan_in: expected a positive integer"),
])
def test_bad_fans(fan_in, fan_out, exc, match):
    with pytest.raises(exc, match=match):
        I.initialize("he_normal", fan_in, fan_out, rng())


def test_numpy_integer_fans_are_accepted():
    assert I.initialize("he_normal", np.int64(4), np.int32(3), rng()).shape == (4, 3)


def test_bad_rng():
    for bad in (None, 0, np.random.RandomState(0)):
        with pytest.raises(TypeError, match=r"rng: expected a numpy.random.Generator.*"
                                            r"np.random.default_rng\(seed\)"):
            I.initialize("he_normal", 2, 2, bad)


@pytest.mark.parametrize("name,scale,exc,match", [
    ("he_normal", 0.0, ValueError, "scale: expected > 0.0, got 0.0"),
    ("glorot_uniform", -1.0, ValueError, "scale: expected > 0.0"),
    ("normal", float("nan"), ValueError, "scale: expected a finite number"),
    ("uniform", "0.1", TypeError, "scale: expected a real number"),
    ("constant", float("inf"), ValueError, "scale: expected a finite number"),
    ("zeros", 1.0, ValueError, "scale: init='zeros' takes no scale"),
])
def test_bad_scale(name, scale, exc, match):
    with pytest.raises(exc, match=match):
        I.initialize(name, 2, 2, rng(), scale=scale)


def test_callable_init_is_used_and_cast_to_float32():
    def ones(fan_in, fan_out, g):
        assert isinstance(g, np.random.Generator)
        return np.ones((fan_in, fan_out))
    w = I.initialize(ones, 3, 2, rng())
    assert w.dtype == np.float32 and w.shape == (3, 2) and (w == 1).all()


def test_callable_init_result_is_never_aliased():
    keep = np.zeros((2, 2), np.float32)
    w = I.initialize(lambda i, o, g: keep, 2, 2, rng())
    w[0, 0] = 1.0
    assert keep[0, 0] == 0.0


def test_callable_init_validates_shape_finiteness_and_type():
    with pytest.raises(ValueError, match=r"init: the callable .* must return shape \(fan_in, "
                                         r"fan_out\) = \(3, 2\), got \(2, 3\)"):
        I.initialize(lambda i, o, g: np.zeros((o, i)), 3, 2, rng())
    with pytest.raises(ValueError, match="non-finite"):
        I.initialize(lambda i, o, g: np.full((i, o), np.nan), 3, 2, rng())
    with pytest.raises(ValueError, match="non-finite"):  # overflows float32
        I.initialize(lambda i, o, g: np.full((i, o), 1e39), 3, 2, rng())
    with pytest.raises(TypeError, match="must return a numpy array, got list"):
        I.initialize(lambda i, o, g: [[0.0] * o] * i, 3, 2, rng())
    with pytest.raises(TypeError, match="must return real numbers"):
        I.initialize(lambda i, o, g: np.zeros((i, o), complex), 3, 2, rng())
    with pytest.raises(ValueError, match="scale: a callable init takes no scale"):
        I.initialize(lambda i, o, g: np.zeros((i, o)), 3, 2, rng(), scale=2.0)
