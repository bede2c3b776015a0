"""fastmlp.pretrain_autoencoder: greedy layer-wise (denoising) autoencoder pretraining. Each test
checks an outcome that would differ if the feature were wrong; improvements are asserted for
several seeds, with margins measured over 10-30 seeds (see the comments)."""
from __future__ import annotations

import numpy as np
import pytest

import fastmlp
from fastmlp.datasets import load_digits

X_TRAIN, Y_TRAIN, X_TEST, _ = load_digits()


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def relative_mse(ae, H):
    """The autoencoder's inference-mode reconstruction MSE of H over that of predicting the
    mean: 1.0 is what a decoder that learnt only its bias scores, so it cannot pass by luck."""
    H = H.astype(np.float32)
    return ae.evaluate(H, H, loss="mse")["loss"] / float(H.var(axis=0).mean())


def params(layer):
    return {name: layer._view(name).copy() for name in fastmlp.Layer._ARRAYS
            if layer._view(name) is not None}


def assert_same_params(a, b, what):
    pa, pb = params(a), params(b)
    assert pa.keys() == pb.keys(), what
    for name in pa:
        assert np.array_equal(pa[name], pb[name]), f"{what}: {name} differs"


# ---- what pretraining does to the model ----

def test_pretrains_the_hidden_layers_in_place_and_never_touches_the_output_layer():
    model = fastmlp.MLP([64, 32, 16, 10], activation="sigmoid", seed=0)
    before = [params(l) for l in model.layers]
    hs = fastmlp.pretrain_autoencoder(model, X_TRAIN, epochs=3, lr=1e-2, seed=0)
    assert [h.params["layer"] for h in hs] == [0, 1]
    assert all(len(h.history["loss"]) == 3 for h in hs)
    for k in (0, 1):
        assert not np.array_equal(model.layers[k].W, before[k]["W"]), f"layer {k} W unchanged"
        assert not np.array_equal(model.layers[k].b, before[k]["b"]), f"layer {k} b unchanged"
        # The model's layer is the trained encoder, copied back bit for bit.
        assert_same_params(model.layers[k], hs[k].autoencoder.layers[0], f"layer {k}")
    assert np.array_equal(model.layers[2].W, before[2]["W"])
    assert np.array_equal(model.layers[2].b, before[2]["b"])


def test_pretraining_starts_from_the_layers_current_weights():
    # With a tiny step the encoder barely moves from the model's weights (an autoencoder
    # starting from its own fresh init would land far away).
    model = fastmlp.MLP([64, 32, 16, 10], activation="sigmoid", batchnorm=[True, False, False],
                        seed=0)
    model.layers[0].gamma[...] = 2.0
    before = [params(l) for l in model.layers]
    fastmlp.pretrain_autoencoder(model, X_TRAIN, epochs=1, lr=1e-7, seed=0)
    for k in (0, 1):
        after = params(model.layers[k])
        for name in ("W", "b", "gamma", "beta"):
            if name in after:
                np.testing.assert_allclose(after[name], before[k][name], atol=1e-4,
                                           err_msg=f"layer {k} {name}")
        assert not np.array_equal(after["W"], before[k]["W"])


def test_only_the_listed_layers_change():
    model = fastmlp.MLP([64, 32, 16, 10], activation="sigmoid", seed=0)
    before = model.get_weights()
    (h,) = fastmlp.pretrain_autoencoder(model, X_TRAIN, layers=[1], epochs=2, seed=0)
    after = model.get_weights()
    assert h.params["layer"] == 1
    assert np.array_equal(after[0], before[0]) and np.array_equal(after[1], before[1])
    assert not np.array_equal(after[2], before[2])
    assert np.array_equal(after[4], before[4]) and np.array_equal(after[5], before[5])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_each_layer_learns_to_reconstruct_its_input_from_the_codes_below(seed):
    # Over seeds 0-9 the relative MSE is at most 0.11 (layer 0) and 0.29 (layer 1).
    model = fastmlp.MLP([64, 32, 16, 10], activation="sigmoid", seed=seed)
    hs = fastmlp.pretrain_autoencoder(model, X_TRAIN, epochs=10, lr=1e-2, seed=seed)
    H = X_TRAIN.astype(np.float64)
    for k, h in enumerate(hs):
        loss = h.history["loss"]
        assert loss[-1] < 0.5 * loss[0], f"layer {k}: reconstruction loss {loss}"
        # H is recomputed here in NumPy from the model's final weights: layer k's autoencoder
        # must have been trained on the codes of the pretrained layers below it.
        assert relative_mse(h.autoencoder, H) < 0.5, f"layer {k}"
        layer = model.layers[k]
        H = sigmoid(H @ layer.W + layer.b)


def test_batchnorm_layers_are_pretrained_with_their_gamma_beta_and_statistics():
    model = fastmlp.MLP([64, 32, 16, 10], activation="relu", batchnorm=True, seed=0)
    hs = fastmlp.pretrain_autoencoder(model, X_TRAIN, epochs=5, lr=1e-2, seed=0)
    H = X_TRAIN
    for k, h in enumerate(hs):
        layer, enc = model.layers[k], h.autoencoder.layers[0]
        assert enc.batchnorm and not h.autoencoder.layers[1].batchnorm
        assert_same_params(layer, enc, f"layer {k}")
        # Fresh batch norm is gamma 1, beta 0, mean 0, var 1: all four must have moved.
        assert not np.allclose(layer.gamma, 1.0) and not np.allclose(layer.beta, 0.0)
        assert not np.allclose(layer.running_mean, 0.0)
        assert not np.allclose(layer.running_var, 1.0)
        assert relative_mse(h.autoencoder, H) < 0.5, f"layer {k}"
        H = model._network(0, k + 1).predict(X_TRAIN, 1024, False)


def test_frozen_layers_stay_fixed_and_feed_the_layers_above():
    # The workflow of from_pretrained: a layer pretrained earlier, then kept fixed.
    model = fastmlp.MLP([64, 32, 16, 10], activation="sigmoid", seed=0)
    fastmlp.pretrain_autoencoder(model, X_TRAIN, layers=[0], epochs=10, lr=1e-2, seed=0)
    model.layers[0].trainable = False
    W0 = model.layers[0].W.copy()
    (h,) = fastmlp.pretrain_autoencoder(model, X_TRAIN, epochs=10, lr=1e-2, seed=0)
    assert h.params["layer"] == 1
    assert np.array_equal(model.layers[0].W, W0)
    codes = sigmoid(X_TRAIN.astype(np.float64) @ W0 + model.layers[0].b)
    assert relative_mse(h.autoencoder, codes) < 0.5


# ---- denoising ----

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_denoising_autoencoder_reconstructs_clean_inputs_from_noisy_ones_better(seed):
    # Held-out digits corrupted with the training noise: over seeds 0-9 the denoising
    # autoencoder's MSE is 0.60-0.65 of the plain one's. A noisy target, or noise never
    # applied, would give about 1.
    noisy = X_TEST + np.random.default_rng(100 + seed).normal(0, 0.3, X_TEST.shape)
    mse = {}
    for noise in (0.0, 0.3):
        model = fastmlp.MLP([64, 32, 10], activation="sigmoid", seed=seed)
        (h,) = fastmlp.pretrain_autoencoder(model, X_TRAIN, epochs=10, lr=1e-2, noise=noise,
                                            seed=seed)
        mse[noise] = h.autoencoder.evaluate(noisy.astype(np.float32), X_TEST, loss="mse")["loss"]
    assert mse[0.3] < 0.8 * mse[0.0], mse


# ---- reproducibility ----

@pytest.mark.parametrize("noise", [0.0, 0.2])
def test_the_same_seed_gives_bitwise_identical_weights(noise):
    runs = []
    for seed in (7, 7, 8):
        model = fastmlp.MLP([64, 32, 16, 10], activation="tanh", batchnorm=[True, False, False],
                            seed=0)
        fastmlp.pretrain_autoencoder(model, X_TRAIN, epochs=2, noise=noise, seed=seed)
        runs.append(model.get_weights())
    assert all(np.array_equal(a, b) for a, b in zip(runs[0], runs[1]))
    assert not all(np.array_equal(a, b) for a, b in zip(runs[0], runs[2]))


# ---- fine-tuning ----

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pretraining_helps_a_deep_sigmoid_network_fine_tune(seed):
    # The textbook case: 4 sigmoid hidden layers, where a random init barely trains. Over seeds
    # 0-29 the pretrained network's loss after 10 fine-tuning epochs was 0.20-0.69 lower.
    def fine_tune(model):
        before = model.evaluate(X_TRAIN, Y_TRAIN, loss="cross_entropy")["loss"]
        h = fastmlp.train(model, X_TRAIN, Y_TRAIN, loss="cross_entropy", epochs=10, lr=1e-3,
                          seed=seed, verbose=0)
        return before, h.history["loss"][-1]

    sizes = [64, 32, 32, 32, 32, 10]
    pretrained = fastmlp.MLP(sizes, activation="sigmoid", seed=seed)
    fastmlp.pretrain_autoencoder(pretrained, X_TRAIN, epochs=10, lr=1e-2, seed=seed)
    before, after = fine_tune(pretrained)
    _, after_random = fine_tune(fastmlp.MLP(sizes, activation="sigmoid", seed=seed))
    assert after < before - 0.3
    assert after < after_random - 0.1, (after, after_random)


# ---- bad inputs ----

def _deep():
    return fastmlp.MLP([64, 32, 16, 10], activation="sigmoid", seed=0)


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(layers=[2]), ValueError, ["layers", "output layer"]),
    (dict(layers=[0, 2]), ValueError, ["layers", "output layer"]),
    (dict(layers=[3]), ValueError, ["layers", "[0, 2)"]),
    (dict(layers=[-1]), ValueError, ["layers", "[0, 2)"]),
    (dict(layers=[1, 0]), ValueError, ["layers", "increasing"]),
    (dict(layers=[0, 0]), ValueError, ["layers", "increasing"]),
    (dict(layers=[]), ValueError, ["layers"]),
    (dict(layers=1), TypeError, ["layers", "[1]"]),
    (dict(layers=[0.0]), TypeError, ["layers"]),
    (dict(noise=-0.1), ValueError, ["noise"]),
    (dict(noise=float("nan")), ValueError, ["noise"]),
    (dict(epochs=0), ValueError, ["epochs"]),
    (dict(batch_size=0), ValueError, ["batch_size"]),
    (dict(optimizer="lbfgs"), ValueError, ["optimizer"]),
    (dict(lr=-1.0), ValueError, ["lr"]),
])
def test_bad_arguments_are_rejected_before_any_layer_changes(kwargs, error, words):
    model = _deep()
    before = model.get_weights()
    with pytest.raises(error) as info:
        fastmlp.pretrain_autoencoder(model, X_TRAIN, epochs=kwargs.pop("epochs", 1), **kwargs)
    for word in words:
        assert word in str(info.value)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_a_frozen_layer_listed_in_layers_is_rejected():
    model = _deep()
    model.layers[1].trainable = False
    with pytest.raises(ValueError, match=r"layers: layer 1 is frozen"):
        fastmlp.pretrain_autoencoder(model, X_TRAIN, layers=[0, 1], epochs=1)


def test_bad_model_and_data_are_rejected():
    with pytest.raises(TypeError, match="model"):
        fastmlp.pretrain_autoencoder("mlp", X_TRAIN)
    with pytest.raises(ValueError, match="X: the model takes 64 features, got 63"):
        fastmlp.pretrain_autoencoder(_deep(), X_TRAIN[:, :63])
    with pytest.raises(ValueError, match="X: contains NaN"):
        fastmlp.pretrain_autoencoder(_deep(), np.full((4, 64), np.nan))
    with pytest.raises(ValueError, match="model: no trainable hidden layer"):
        fastmlp.pretrain_autoencoder(fastmlp.MLP([64, 10], seed=0), X_TRAIN)
