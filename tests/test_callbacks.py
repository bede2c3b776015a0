import io

import numpy as np
import pytest

from fastmlp import callbacks as C


class FakeModel:
    """get_weights/set_weights over a list of arrays; `train_epoch` overwrites them in place."""

    def __init__(self, seed=0, copies=True):
        self.rng = np.random.default_rng(seed)
        self.weights = [np.zeros((3, 4), np.float32), np.zeros(4, np.float32)]
        self.copies = copies
        self.history = []  # weights after each epoch, bit patterns

    def get_weights(self):
        return [w.copy() for w in self.weights] if self.copies else self.weights

    def set_weights(self, weights):
        for w, new in zip(self.weights, weights):
            w[...] = new

    def train_epoch(self):
        for w in self.weights:
            w[...] = self.rng.standard_normal(w.shape).astype(np.float32)
        self.weights[0][0, 0] = -0.0 if len(self.history) % 2 else 1e-45  # awkward bits
        self.history.append([w.view(np.uint32).copy() for w in self.weights])


def fit(model, callbacks, metrics, params=None):
    """The trainer's loop as callbacks.py documents it; returns the epochs run."""
    epochs = len(next(iter(metrics.values())))
    cbs = C.CallbackList(callbacks, model, params=params or {"epochs": epochs})
    cbs.on_train_begin()
    ran = 0
    for epoch in range(epochs):
        cbs.on_epoch_begin(epoch)
        model.train_epoch()
        ran += 1
        if cbs.on_epoch_end(epoch, {k: v[epoch] for k, v in metrics.items()}):
            break
    cbs.on_train_end()
    return ran


def bits(weights):
    return [w.view(np.uint32) for w in weights]


def assert_weights_are_epoch(model, epoch):
    for got, want in zip(bits(model.weights), model.history[epoch]):
        np.testing.assert_array_equal(got, want)


# ---- EarlyStopping ----

def test_early_stopping_stops_after_patience_and_restores_the_best_epoch_bitwise():
    model = FakeModel()
    es = C.EarlyStopping(patience=3)
    losses = [1.0, 0.8, 0.7, 0.75, 0.72, 0.71, 0.9, 0.5]
    ran = fit(model, [es], {"loss": [0.0] * 8, "val_loss": losses})
    assert ran == 6 and es.stopped_epoch == 5 and es.stop_training
    assert es.best == 0.7 and es.best_epoch == 2
    assert_weights_are_epoch(model, 2)


def test_early_stopping_restores_when_epochs_run_out():
    model = FakeModel()
    es = C.EarlyStopping(patience=10)
    ran = fit(model, [es], {"val_loss": [0.5, 0.25, 0.75, 1.0]})
    assert ran == 4 and es.stopped_epoch == 0 and not es.stop_training
    assert es.best_epoch == 1
    assert_weights_are_epoch(model, 1)


def test_early_stopping_copies_weights_even_from_a_model_returning_views():
    model = FakeModel(copies=False)
    es = C.EarlyStopping(patience=1)
    fit(model, [es], {"val_loss": [0.5, 0.25, 0.75, 1.0]})
    assert es.stopped_epoch == 2
    assert_weights_are_epoch(model, 1)


def test_restore_best_weights_false_leaves_the_last_weights():
    model = FakeModel()
    es = C.EarlyStopping(patience=1, restore_best_weights=False)
    assert fit(model, [es], {"val_loss": [0.5, 0.25, 0.75, 1.0]}) == 3
    assert es.best_weights is None
    assert_weights_are_epoch(model, 2)


# Best at epoch 0: `patience` epochs without improvement follow, then the stop (0 acts as 1,
# as in Keras: the counter is already 1 at the first epoch without improvement).
@pytest.mark.parametrize("patience,stop", [(0, 1), (1, 1), (2, 2), (4, 4), (5, None)])
def test_early_stopping_patience(patience, stop):
    es = C.EarlyStopping(patience=patience)
    ran = fit(FakeModel(), [es], {"val_loss": [1.0, 2.0, 2.0, 2.0, 2.0]})
    assert es.stopped_epoch == (stop or 0)
    assert ran == (stop + 1 if stop is not None else 5)


def test_early_stopping_min_delta():
    # Improvements of exactly min_delta or less do not count (strict, as in Keras).
    losses = [1.0, 0.75, 0.5, 0.375, 0.25, 0.125]
    es = C.EarlyStopping(patience=2, min_delta=0.25)
    # e1: 0.75 is not < 1.0 - 0.25; e2: 0.5 is; e3, e4: not < 0.5 - 0.25 -> stop at e4.
    assert fit(FakeModel(), [es], {"val_loss": losses}) == 5
    assert (es.best, es.best_epoch, es.stopped_epoch) == (0.5, 2, 4)
    es = C.EarlyStopping(patience=2)
    assert fit(FakeModel(), [es], {"val_loss": losses}) == 6
    assert es.best_epoch == 5


def test_early_stopping_mode_max_for_accuracy():
    es = C.EarlyStopping(monitor="val_accuracy", patience=2)
    assert es.mode == "max"
    model = FakeModel()
    assert fit(model, [es], {"val_accuracy": [0.5, 0.7, 0.6, 0.65, 0.9]}) == 4
    assert (es.best, es.best_epoch, es.stopped_epoch) == (0.7, 1, 3)
    assert_weights_are_epoch(model, 1)
    assert C.EarlyStopping(monitor="loss").mode == "min"
    assert C.EarlyStopping(monitor="val_accuracy", mode="min").mode == "min"


def test_early_stopping_nan_never_improves():
    es = C.EarlyStopping(patience=2)
    assert fit(FakeModel(), [es], {"val_loss": [1.0, float("nan"), float("nan"), 0.1]}) == 3
    assert es.best_epoch == 0


def test_early_stopping_baseline():
    # Never beating the baseline: stops after `patience` epochs, keeping the best so far.
    es = C.EarlyStopping(patience=2, baseline=0.5)
    model = FakeModel()
    assert fit(model, [es], {"val_loss": [0.9, 0.8, 0.7, 0.6, 0.4]}) == 2
    assert (es.best_epoch, es.stopped_epoch) == (1, 1)
    assert_weights_are_epoch(model, 1)
    es = C.EarlyStopping(patience=2, baseline=0.85)
    assert fit(FakeModel(), [es], {"val_loss": [0.9, 0.8, 0.7, 0.6, 0.4]}) == 5


def test_early_stopping_resets_on_train_begin():
    es = C.EarlyStopping(patience=1)
    fit(FakeModel(), [es], {"val_loss": [0.5, 0.75, 1.0]})
    assert es.stopped_epoch == 1
    model = FakeModel(seed=1)
    assert fit(model, [es], {"val_loss": [3.0, 2.0, 1.0]}) == 3
    assert (es.best, es.best_epoch, es.stopped_epoch) == (1.0, 2, 0)
    assert_weights_are_epoch(model, 2)


def test_missing_monitor_lists_the_available_keys():
    es = C.EarlyStopping()
    with pytest.raises(ValueError, match=r"monitor: EarlyStopping monitors 'val_loss', which is "
                                         r"not in the logs of epoch 0; available keys: "
                                         r"accuracy, loss"):
        fit(FakeModel(), [es], {"loss": [1.0], "accuracy": [0.5]})


def test_early_stopping_needs_get_and_set_weights():
    with pytest.raises(TypeError, match=r"model: EarlyStopping\(restore_best_weights=True\) "
                                        r"needs a model with get_weights\(\) and set_weights"):
        C.CallbackList([C.EarlyStopping()], object())
    C.CallbackList([C.EarlyStopping(restore_best_weights=False)], object())  # fine


@pytest.mark.parametrize("kwargs,exc,match", [
    ({"patience": -1}, ValueError, "patience: expected a non-negative integer"),
    ({"patience": 2.5}, TypeError, "patience: expected a non-negative integer"),
    ({"min_delta": -0.1}, ValueError, "min_delta: expected >= 0.0"),
    ({"mode": "maximum"}, ValueError, "mode: expected 'auto', 'min' or 'max'"),
    ({"monitor": 3}, TypeError, "monitor: expected the name of a logged metric"),
    ({"restore_best_weights": "yes"}, TypeError, "restore_best_weights: expected True or False"),
    ({"baseline": "low"}, TypeError, "baseline: expected a real number"),
])
def test_early_stopping_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        C.EarlyStopping(**kwargs)


# ---- ReduceLROnPlateau ----

def run_plateau(cb, values, lr=0.5, monitor="val_loss"):
    cbs = C.CallbackList([cb], FakeModel())
    cbs.on_train_begin()
    scales = []
    for epoch, v in enumerate(values):
        cbs.on_epoch_end(epoch, {monitor: v, "lr": lr * cb.scale})  # the rate in effect
        scales.append(cb.scale)
    return scales


def test_reduce_lr_scale_sequence():
    cb = C.ReduceLROnPlateau(factor=0.5, patience=2, min_delta=0.01, cooldown=1, min_lr=0.1)
    losses = [1.0, 0.995, 0.999, 0.98, 0.98, 0.98, 0.98, 0.98, 0.98, 0.98, 0.98]
    # e2: 2 epochs without a 0.01 improvement -> 0.5; e3 cooldown, then improves; e5 -> 0.25;
    # e6 cooldown; e7 -> max(0.125, min_lr/lr = 0.2); then 0.2 * 0.5 == min_lr: no further cut.
    assert run_plateau(cb, losses) == [1, 1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.2, 0.2, 0.2, 0.2]
    assert cb.scale * 0.5 == cb.min_lr


def test_reduce_lr_patience_zero_and_mode_max():
    cb = C.ReduceLROnPlateau(monitor="val_accuracy", factor=0.5, patience=0, min_delta=0.0)
    assert cb.mode == "max"
    assert run_plateau(cb, [0.5, 0.6, 0.6, 0.7, 0.65], monitor="val_accuracy") == [
        1, 1, 0.5, 0.5, 0.25]


def test_reduce_lr_follows_the_base_lr_in_logs():
    cb = C.ReduceLROnPlateau(factor=0.1, patience=1, min_lr=0.01)
    cbs = C.CallbackList([cb], None)
    cbs.on_train_begin()
    cbs.on_epoch_end(0, {"val_loss": 1.0, "lr": 1.0})
    cbs.on_epoch_end(1, {"val_loss": 1.0, "lr": 1.0})
    assert cb.scale == pytest.approx(0.1)
    # The schedule decayed to 0.2 (in effect 0.2 * 0.1): the floor is now 0.01 / 0.2.
    cbs.on_epoch_end(2, {"val_loss": 1.0, "lr": 0.2 * cb.scale})
    assert cb.scale == pytest.approx(0.05)
    cbs.on_epoch_end(3, {"val_loss": 1.0, "lr": 0.2 * cb.scale})  # at min_lr: unchanged
    assert cb.scale == pytest.approx(0.05)


def test_reduce_lr_needs_lr_in_logs():
    cb = C.ReduceLROnPlateau()
    with pytest.raises(ValueError, match=r"logs: ReduceLROnPlateau reads logs\['lr'\].*"
                                         r"available keys: val_loss"):
        cb.on_epoch_end(0, {"val_loss": 1.0})
    with pytest.raises(ValueError, match="monitor: ReduceLROnPlateau monitors 'val_loss'"):
        cb.on_epoch_end(0, {"loss": 1.0, "lr": 0.1})


@pytest.mark.parametrize("kwargs,exc,match", [
    ({"factor": 1.0}, ValueError, "factor: expected < 1.0"),
    ({"factor": 0.0}, ValueError, "factor: expected > 0.0"),
    ({"patience": -1}, ValueError, "patience: expected a non-negative integer"),
    ({"cooldown": 1.5}, TypeError, "cooldown: expected a non-negative integer"),
    ({"min_lr": -1e-3}, ValueError, "min_lr: expected >= 0.0"),
    ({"min_delta": float("nan")}, ValueError, "min_delta: expected a finite number"),
    ({"mode": "up"}, ValueError, "mode: expected"),
])
def test_reduce_lr_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        C.ReduceLROnPlateau(**kwargs)


# ---- ProgressBar ----

class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


class TTY(io.StringIO):
    def isatty(self):
        return True


LOGS = {"loss": 0.1234, "accuracy": 0.965, "val_loss": 0.15, "val_accuracy": 0.95}
LINE = ("Epoch 3/50  12/12 [==============================] 0.21s  loss 0.1234  accuracy 0.9650  "
        "val_loss 0.1500  val_accuracy 0.9500")


def make_bar(stream):
    bar = C.ProgressBar(stream)
    bar._clock = clock = Clock()
    bar.set_params({"epochs": 50, "steps": 12})
    return bar, clock


def test_progress_bar_epoch_line():
    out = io.StringIO()
    bar, clock = make_bar(out)
    bar.on_train_begin()
    bar.on_epoch_begin(2)
    clock.t = 0.21
    bar.on_epoch_end(2, LOGS)
    assert out.getvalue() == LINE + "\n"


def test_progress_bar_writes_no_carriage_returns_to_a_file():
    out = io.StringIO()
    bar, clock = make_bar(out)
    bar.on_train_begin()
    for epoch in range(2):
        bar.on_epoch_begin(epoch)
        for b in range(1, 13):
            clock.t += 1.0
            bar.update(b, 12, {"loss": 0.5})
        bar.on_epoch_end(epoch, {"loss": 0.5, "lr": 1e-5})
    text = out.getvalue()
    assert "\r" not in text
    assert text.splitlines() == [
        "Epoch 1/50  12/12 [==============================] 12.00s  loss 0.5000  lr 1.000e-05",
        "Epoch 2/50  12/12 [==============================] 12.00s  loss 0.5000  lr 1.000e-05"]


def test_progress_bar_redraws_a_tty_at_most_every_min_interval():
    out = TTY()
    bar, clock = make_bar(out)
    bar.on_train_begin()
    bar.on_epoch_begin(0)
    for b in range(1, 13):  # 12 batches 0.04 s apart: draws at 0.04, 0.16, 0.28, 0.40
        clock.t = 0.04 * b
        bar.update(b, 12, {"loss": 1.0})
    frames = out.getvalue().split("\r")[1:]
    assert [f.split()[2] for f in frames] == ["1/12", "4/12", "7/12", "10/12"]
    assert frames[0] == ("Epoch 1/50   1/12 [==>...........................] 0.04s  "
                         "loss 1.0000")
    clock.t = 0.5
    bar.on_epoch_end(0, {"loss": 0.25})
    last = out.getvalue().split("\r")[-1]
    assert last.rstrip(" \n") == ("Epoch 1/50  12/12 [==============================] 0.50s  "
                                  "loss 0.2500")
    assert last.endswith("\n") and "\n" not in out.getvalue()[:-1]


def test_progress_bar_half_bar():
    bar, _ = make_bar(io.StringIO())
    assert bar._line(0, 6, 12, 1.0, {}) == ("Epoch 1/50   6/12 [===============>..............] "
                                            "1.00s")
    assert bar._line(0, 0, 12, None, {}) == "Epoch 1/50   0/12 [..............................]"


def test_progress_bar_without_params_or_updates():
    out = io.StringIO()
    bar = C.ProgressBar(out)
    bar._clock = clock = Clock()
    bar.on_train_begin()
    clock.t = 1.5
    bar.on_epoch_end(0, {"loss": 2.0})
    assert out.getvalue() == "Epoch 1  1.50s  loss 2.0000\n"


def test_progress_bar_defaults_to_stderr_at_write_time(capsys):
    bar = C.ProgressBar()
    bar.on_epoch_end(0, {"loss": 1.0})
    assert capsys.readouterr().err.startswith("Epoch 1")


def test_progress_bar_bad_arguments():
    with pytest.raises(TypeError, match="stream: expected a text stream with write()"):
        C.ProgressBar("stderr")
    with pytest.raises(ValueError, match="width: expected a positive integer"):
        C.ProgressBar(width=0)
    with pytest.raises(ValueError, match="min_interval: expected >= 0.0"):
        C.ProgressBar(min_interval=-1)


# ---- History, LambdaCallback, CallbackList ----

def test_history_records_every_epoch():
    h = C.History()
    ran = fit(FakeModel(), [h], {"loss": [3.0, 2.0, 1.0], "val_loss": [3.5, 2.5, 1.5]},
              params={"epochs": 3, "steps": 4})
    assert ran == 3
    assert h.epoch == [0, 1, 2]
    assert h.history == {"loss": [3.0, 2.0, 1.0], "val_loss": [3.5, 2.5, 1.5]}
    assert h.params == {"epochs": 3, "steps": 4}
    assert repr(h) == "History(epochs=3, keys=['loss', 'val_loss'])"


def test_lambda_callback_and_stop_training():
    seen = []

    def stop_at_1(epoch, logs):
        seen.append((epoch, logs["loss"]))
        if epoch == 1:
            cb.stop_training = True

    cb = C.LambdaCallback(on_train_begin=lambda logs: seen.append("begin"),
                          on_epoch_end=stop_at_1,
                          on_train_end=lambda logs: seen.append("end"))
    h = C.History()
    assert fit(FakeModel(), [cb, h], {"loss": [3.0, 2.0, 1.0]}) == 2
    assert seen == ["begin", (0, 3.0), (1, 2.0), "end"]
    assert h.epoch == [0, 1]  # the later callback still saw the stopping epoch


def test_lambda_callback_rejects_non_callables():
    with pytest.raises(TypeError, match="on_epoch_end: expected a function or None, got str"):
        C.LambdaCallback(on_epoch_end="print")


def test_callback_list_sets_model_params_and_clears_stop_flags():
    cb = C.Callback()
    cb.stop_training = True
    model = FakeModel()
    cbs = C.CallbackList([cb], model, params={"epochs": 2})
    assert cb.model is model and cb.params == {"epochs": 2} and len(cbs) == 1
    cbs.on_train_begin()
    assert not cb.stop_training
    assert cbs.on_epoch_end(0, {}) is False
    assert list(C.CallbackList(None, model)) == []


def test_callback_list_validates_items():
    with pytest.raises(TypeError, match=r"callbacks\[1\]: expected a fastmlp.callbacks.Callback, "
                                        r"got function; wrap a function with LambdaCallback"):
        C.CallbackList([C.History(), lambda e, logs: None], None)
    with pytest.raises(TypeError, match=r"callbacks\[0\]: expected a fastmlp.callbacks.Callback, "
                                        r"got str$"):
        C.CallbackList(["early"], None)
    with pytest.raises(TypeError, match=r"callbacks: expected a list of Callback, got a single "
                                        r"EarlyStopping; pass \[EarlyStopping\(...\)\]"):
        C.CallbackList(C.EarlyStopping(), FakeModel())
    with pytest.raises(TypeError, match="callbacks: expected a list of Callback, got dict"):
        C.CallbackList({}, None)


def test_reprs_are_short():
    assert repr(C.EarlyStopping()) == ("EarlyStopping(monitor='val_loss', patience=5, "
                                       "min_delta=0.0, mode='min', restore_best_weights=True, "
                                       "baseline=None)")
    assert repr(C.ReduceLROnPlateau()).startswith("ReduceLROnPlateau(monitor='val_loss', "
                                                  "factor=0.1, patience=10")
    assert repr(C.History()) == "History(epochs=0, keys=[])"
