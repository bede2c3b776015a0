"""The seeds' failures, run from examples/: each diagnosis must name the problem and each fix
must work. These fail if a rule, a threshold or a fix stops doing its job."""
import importlib.util
import pathlib

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_examples_are_present():
    names = sorted(p.stem for p in EXAMPLES.glob("seed*.py"))
    assert names == ["seed000_identity_encoder", "seed001_deep_sigmoid",
                     "seed003_sigmoid_init", "seed004_log_regression"]


@pytest.mark.parametrize("seed", [0, 1])
def test_seed000_vanishing_gradients_in_the_deeper_encoder(seed):
    out = _load("seed000_identity_encoder").main(quick=True, seed=seed, verbose=False)
    shallow, deep, fixed = out["shallow"], out["deep"], out["deep_fixed"]
    # Vanishing gradients in both hidden layers of the deep net, not in the shallow one.
    assert {f.layer for f in deep["report"].by_kind("vanishing_gradients")} == {0, 1}
    assert "vanishing_gradients" not in shallow["report"].kinds()
    # The deep net's output collapses (and does not recover); the shallow one is slow but moving.
    assert [f.severity for f in deep["report"].by_kind("constant_output")] == ["error"]
    assert [f.severity for f in shallow["report"].by_kind("constant_output")] in ([], ["info"])
    assert deep["spread"] < 1e-6
    assert shallow["correlation"] > 0.95
    # The answer's fix (Glorot weights, bias 0.1) learns the identity.
    assert fixed["report"].healthy
    assert fixed["correlation"] > 0.95  # 0.98 after the quick 3,000 steps, 0.999 after 10,000


def test_seed004_collapse_is_named_and_the_fix_reaches_1e3():
    out = _load("seed004_log_regression").main(quick=True, verbose=False)
    kinds = out["report"].kinds()
    assert {"exploding_gradients", "dead_relu", "constant_output", "poor_init"} <= kinds
    # The explosion is seen at the very first step, before the units die.
    assert min(f.numbers["at_step"] for f in out["report"].by_kind("exploding_gradients")) == 1
    assert out["broken_spread"] < 1e-3
    assert out["fixed_mse"] < 1e-3
    assert not {"dead_relu", "exploding_gradients"} & out["fixed_report"].kinds()


@pytest.mark.parametrize("seed", [0, 1])
def test_seed003_saturation_and_faster_learning_with_fan_in(seed):
    out = _load("seed003_sigmoid_init").main(quick=True, seed=seed, verbose=False)
    big, scaled = out["normal(0, 1)"], out["fan_in"]
    assert 0 in {f.layer for f in big["report"].by_kind("saturation")}
    assert "saturation" not in scaled["report"].kinds()
    assert scaled["epochs_to_90"] is not None
    assert big["epochs_to_90"] is None or scaled["epochs_to_90"] < big["epochs_to_90"]


def test_seed001_vanishing_flagged_and_each_fix_helps():
    out = _load("seed001_deep_sigmoid").main(quick=True, verbose=False)
    base = out["sigmoid (the problem)"]
    assert 0 in {f.layer for f in base["report"].by_kind("vanishing_gradients")}
    assert base["accuracy"] < 0.5
    for fix in ("relu + he_normal", "elu + he_normal", "sigmoid + batchnorm"):
        assert "vanishing_gradients" not in out[fix]["report"].kinds(), fix
        assert out[fix]["accuracy"] > base["accuracy"] + 0.4, fix
    exploding = out["relu + normal(0, 1) (exploding)"]
    clipped = out["relu + normal(0, 1) + clip_norm=1"]
    assert {"exploding_gradients", "nonfinite"} & exploding["report"].kinds()
    assert exploding["stopped"] is not None  # diverged: the best weights were restored
    assert clipped["stopped"] is None
    assert clipped["accuracy"] > exploding["accuracy"] + 0.3
