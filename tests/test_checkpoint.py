"""Checkpoints: train(checkpoint=, resume=) continues exactly, also after SIGKILL mid-epoch, and
a damaged or forged checkpoint file is refused with a clear ValueError, never executed."""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import signal
import struct
import subprocess
import sys
import warnings

import numpy as np
import pytest

import fastmlp
from fastmlp import checkpoint as ck
from fastmlp.callbacks import Callback, EarlyStopping, ReduceLROnPlateau
from fastmlp.schedules import ExponentialDecay


class Interrupt(Exception):
    """Stands for a crash: raised by a callback at the start of an epoch."""


class InterruptAt(Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise Interrupt(epoch)


def data(n=203, features=7, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, features)).astype(np.float32)
    y = (X[:, 0] - X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 0.8)
    return X, y.clip(0, classes - 1)


def model():
    return fastmlp.MLP([7, 17, 9, 3], seed=3, batchnorm=[True, False, False], dropout=0.25)


def options(**kw):
    """Options that touch everything a checkpoint holds: shuffling and dropout (RNG), Adam's
    moments and step, a decaying schedule, batch-norm statistics, a validation split, early
    stopping with best weights and ReduceLROnPlateau."""
    base = dict(loss="cross_entropy", optimizer="adam", lr=ExponentialDecay(0.02, 20, 0.7),
                batch_size=16, epochs=7, seed=11, verbose=0, validation_split=0.2,
                callbacks=[ReduceLROnPlateau(monitor="loss", patience=1, factor=0.5)],
                early_stopping=EarlyStopping(patience=100))
    base.update(kw)
    return base


def fresh(opts):
    """The callbacks of opts rebuilt: each run gets its own callback objects."""
    out = dict(opts)
    out["callbacks"] = [ReduceLROnPlateau(monitor="loss", patience=1, factor=0.5)] + \
        [c for c in opts.get("callbacks", []) if not isinstance(c, ReduceLROnPlateau)]
    if isinstance(opts.get("early_stopping"), EarlyStopping):
        es = opts["early_stopping"]
        out["early_stopping"] = EarlyStopping(patience=es.patience, monitor=es.monitor)
    return out


def assert_same_run(a_model, a_hist, b_model, b_hist):
    np.testing.assert_array_equal(a_model._params, b_model._params, err_msg="parameters")
    np.testing.assert_array_equal(a_model._stats, b_model._stats, err_msg="bn statistics")
    assert a_hist.epoch == b_hist.epoch
    assert set(a_hist.history) == set(b_hist.history)
    for key in a_hist.history:
        if key != "time":
            assert a_hist.history[key] == b_hist.history[key], key
    assert a_hist.nonfinite == b_hist.nonfinite
    assert a_hist.skipped_batches == b_hist.skipped_batches
    assert a_hist.stopped_reason == b_hist.stopped_reason


def quiet_train(m, X, y, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the skip-mode runs warn
        return fastmlp.train(m, X, y, **kw)


# ---- exact resumption -------------------------------------------------------------------------

@pytest.mark.parametrize("variant", ["adam-bn-dropout", "skip-bad-row", "early-stop"])
def test_an_interrupted_run_resumed_ends_bitwise_identical(tmp_path, variant):
    X, y = data()
    opts = options()
    if variant == "skip-bad-row":
        X[5] = 3e38  # overflows in every epoch's batch that holds it: skipped, counted
        opts = options(on_nonfinite="skip", optimizer="sgd", lr=0.05, momentum=0.9)
    elif variant == "early-stop":  # stops (and restores its best) after the interruption
        opts = options(early_stopping=EarlyStopping(monitor="val_loss", patience=2),
                       epochs=40, lr=0.03)
    whole = model()
    h_whole = quiet_train(whole, X, y, **fresh(opts))
    at = 6  # after ReduceLROnPlateau's first cut
    if variant == "skip-bad-row":
        assert h_whole.skipped_batches == len(h_whole.epoch) > 0
        at = 3
    if variant == "early-stop":
        assert 3 < len(h_whole.epoch) < 40, "early stopping should stop after the interruption"
        at = len(h_whole.epoch) - 1  # the epoch it stops at: only its patience count knows

    path = tmp_path / "run.ckpt"
    interrupted = model()
    first = fresh(opts)
    first["callbacks"] = first["callbacks"] + [InterruptAt(at)]
    with pytest.raises(Interrupt):
        quiet_train(interrupted, X, y, checkpoint=path, **first)
    saved = ck.load_checkpoint(path)
    assert saved.epoch == at
    plateau, stopping = (c["state"] for c in saved.training["callbacks"])
    if variant == "adam-bn-dropout":  # the saved state matters: a fresh one would differ
        assert plateau["scale"] < 1.0
    if variant == "early-stop":
        assert stopping["wait"] >= 1 and stopping["best_epoch"] < at - 1

    resumed = model()  # a new object, different weights until the checkpoint is loaded
    h_resumed = quiet_train(resumed, X, y, resume=path, **fresh(opts))
    assert_same_run(resumed, h_resumed, whole, h_whole)


def test_a_finished_run_resumes_to_more_epochs_or_to_nothing(tmp_path):
    X, y = data()
    path = tmp_path / "run.ckpt"
    four = model()
    quiet_train(four, X, y, checkpoint=path, **fresh(options(epochs=4)))
    again = model()
    h = quiet_train(again, X, y, resume=path, **fresh(options(epochs=4)))
    assert h.epoch == [0, 1, 2, 3]
    np.testing.assert_array_equal(again._params, four._params)
    six, longer = model(), model()
    h_six = quiet_train(six, X, y, **fresh(options(epochs=6)))
    h_longer = quiet_train(longer, X, y, resume=path, **fresh(options(epochs=6)))
    assert_same_run(longer, h_longer, six, h_six)


def test_checkpoint_every_and_resume_true(tmp_path):
    X, y = data()
    path = tmp_path / "every2.ckpt"
    opts = fresh(options(epochs=5, checkpoint_every=2))
    opts["callbacks"] = opts["callbacks"] + [InterruptAt(3)]
    with pytest.raises(Interrupt):
        quiet_train(model(), X, y, checkpoint=path, **opts)
    assert ck.load_checkpoint(path).epoch == 2  # epochs 2 and 4 only, and the last one
    whole, resumed = model(), model()
    h_whole = quiet_train(whole, X, y, **fresh(options(epochs=5)))
    h = quiet_train(resumed, X, y, checkpoint=path, resume=True,
                    **fresh(options(epochs=5, checkpoint_every=2)))
    assert_same_run(resumed, h, whole, h_whole)
    saved = ck.load_checkpoint(path)
    assert (saved.epoch, saved.step) == (5, 5 * 11)  # 162 training rows / 16 -> 11 batches
    # resume=True without a checkpoint yet starts afresh (and writes one).
    new_path = tmp_path / "new.ckpt"
    h_new = quiet_train(model(), X, y, checkpoint=new_path, resume=True,
                        **fresh(options(epochs=5)))
    assert h_new.epoch == list(range(5)) and os.path.exists(new_path)


CHILD = r"""
import sys, numpy as np, fastmlp
from fastmlp.callbacks import Callback

class Announce(Callback):
    # Epoch k begins only after epoch k-1's checkpoint was written (checkpoint_every=1).
    def on_epoch_begin(self, epoch, logs=None):
        print(f"epoch {epoch}", flush=True)

X, y = np.load(sys.argv[1]), np.load(sys.argv[2])
model = fastmlp.MLP([7, 17, 9, 3], seed=3, batchnorm=[True, False, False], dropout=0.25)
fastmlp.train(model, X, y, loss="cross_entropy", optimizer="adam", lr=0.01, batch_size=4,
              epochs=1000, seed=11, verbose=0, checkpoint=sys.argv[3], checkpoint_every=1,
              callbacks=[Announce()])
"""


def test_a_run_killed_mid_epoch_resumes_bitwise_identical(tmp_path):
    X, y = data(n=4001)  # 1001 batches of 4 rows per epoch: the kill lands inside one
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    path = tmp_path / "killed.ckpt"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(fastmlp.__file__)))
    with subprocess.Popen([sys.executable, str(script), str(tmp_path / "X.npy"),
                           str(tmp_path / "y.npy"), str(path)], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as child:
        try:
            for line in child.stdout:
                if line.strip() == "epoch 3":  # epochs 0-2 are checkpointed; 3 is running
                    child.send_signal(signal.SIGKILL)
                    break
        finally:
            child.kill()
            errors = child.stderr.read()
            child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL, errors

    saved = ck.load_checkpoint(path)  # verified: a whole checkpoint, not a torn one
    assert saved.epoch >= 3
    epochs = saved.epoch + 2
    kw = dict(loss="cross_entropy", optimizer="adam", lr=0.01, batch_size=4, epochs=epochs,
              seed=11, verbose=0)
    resumed, whole = model(), model()
    h = fastmlp.train(resumed, X, y, resume=path, **kw)
    h_whole = fastmlp.train(whole, X, y, **kw)
    assert_same_run(resumed, h, whole, h_whole)


# ---- what the file holds ------------------------------------------------------------------------

def test_a_checkpoint_rebuilds_its_model(tmp_path):
    X, y = data()
    X = X * 3.0 + 1.0
    trained = model()
    trained.metadata = {"task": "three classes"}
    trained.input_mean = X.mean(axis=0)
    trained.input_scale = 1.0 / X.std(axis=0)
    path = tmp_path / "m.ckpt"
    quiet_train(trained, X, y, checkpoint=path, **fresh(options(epochs=2, early_stopping=False)))
    saved = fastmlp.load_checkpoint(path)
    assert repr(saved) == f"Checkpoint({str(path)!r}, epoch=2, step=22)"
    rebuilt = saved.model()
    assert rebuilt.metadata == {"task": "three classes"}
    np.testing.assert_array_equal(rebuilt.input_scale, trained.input_scale)
    np.testing.assert_array_equal(rebuilt.predict(X), trained.predict(X))
    assert saved.training["settings"]["batch_size"] == 16
    # The rebuilt model resumes; one without the input scaling is refused up front.
    quiet_train(rebuilt, X, y, resume=path, **fresh(options(epochs=3, early_stopping=False)))
    with pytest.raises(ValueError, match="model.input_mean: differs"):
        quiet_train(model(), X, y, resume=path, **fresh(options(early_stopping=False)))


def test_a_generator_seed_of_another_kind_round_trips(tmp_path):
    # MT19937 keeps its state in a uint32 array: stored as a JSON list, taken back by NumPy.
    X, y = data()
    path = tmp_path / "mt.ckpt"

    def seed():
        return np.random.Generator(np.random.MT19937(5))
    opts = fresh(options(epochs=4, seed=seed()))
    opts["callbacks"] = opts["callbacks"] + [InterruptAt(2)]
    with pytest.raises(Interrupt):
        quiet_train(model(), X, y, checkpoint=path, **opts)
    whole, resumed = model(), model()
    h_whole = quiet_train(whole, X, y, **fresh(options(epochs=4, seed=seed())))
    h = quiet_train(resumed, X, y, resume=path, **fresh(options(epochs=4, seed=seed())))
    assert_same_run(resumed, h, whole, h_whole)
    with pytest.raises(ValueError, match="random state this run's generator cannot take"):
        quiet_train(model(), X, y, resume=path, **fresh(options(epochs=4, seed=1)))


@pytest.mark.parametrize("shape", [(1,), (3, 17), (17, 1, 3), (0,)])
def test_container_round_trip(tmp_path, shape):
    rng = np.random.default_rng(len(shape))
    arrays = {"a": rng.standard_normal(shape).astype(np.float32),
              "b/c": rng.standard_normal(5).astype(np.float32)}
    path = tmp_path / "c.bin"
    ck.write_container(path, {"format": ck.FORMAT, "version": ck.VERSION, "x": [1.5, None]},
                       arrays)
    header, back = ck.read_container(path)
    assert header["x"] == [1.5, None]
    for k, a in arrays.items():
        assert back[k].dtype == np.float32 and back[k].flags.writeable
        np.testing.assert_array_equal(back[k], a)


# ---- damaged, altered and foreign files -------------------------------------------------------

@pytest.fixture
def saved(tmp_path):
    X, y = data()
    path = tmp_path / "good.ckpt"
    quiet_train(model(), X, y, checkpoint=path, **fresh(options(epochs=1)))
    return path, path.read_bytes()


def forged(raw: bytes, edit) -> bytes:
    """raw with its header edited by edit(header dict) and the checksum recomputed: a file
    that passes the SHA-256 check, so only the structural checks can refuse it."""
    n = struct.unpack_from("<Q", raw, len(ck.MAGIC))[0]
    start = len(ck.MAGIC) + 8
    header = json.loads(raw[start:start + n])
    edit(header)
    text = json.dumps(header).encode()
    body = ck.MAGIC + struct.pack("<Q", len(text)) + text + raw[start + n:-32]
    return body + hashlib.sha256(body).digest()


def test_truncated_files_are_refused(saved, tmp_path):
    path, raw = saved
    bad = tmp_path / "bad.ckpt"
    for keep in (0, 5, len(ck.MAGIC) + 3, len(ck.MAGIC) + 40, len(raw) // 2, len(raw) - 1):
        bad.write_bytes(raw[:keep])
        with pytest.raises(ValueError, match="truncated|checksum"):
            ck.load_checkpoint(bad)


def test_any_flipped_bit_is_caught_by_the_checksum(saved, tmp_path):
    path, raw = saved
    bad = tmp_path / "bad.ckpt"
    rng = np.random.default_rng(7)
    n_header = struct.unpack_from("<Q", raw, len(ck.MAGIC))[0]
    payload_at = len(ck.MAGIC) + 8 + n_header
    spots = [len(ck.MAGIC) + 20, payload_at + 3, len(raw) - 40, len(raw) - 1]
    spots += list(rng.integers(len(ck.MAGIC) + 8, len(raw), 4))
    for at in spots:
        flipped = bytearray(raw)
        flipped[at] ^= 1 << int(rng.integers(8))
        bad.write_bytes(bytes(flipped))
        with pytest.raises(ValueError, match="SHA-256 checksum|corrupt header"):
            ck.load_checkpoint(bad)


def test_forged_headers_are_checked_before_any_array_is_read(saved, tmp_path):
    path, raw = saved
    bad = tmp_path / "bad.ckpt"

    def entry(h, name="model/params"):
        return next(e for e in h["arrays"] if e["name"] == name)

    cases = [
        (lambda h: entry(h).update(shape=[10 ** 12]), "nbytes must be"),
        (lambda h: entry(h).update(nbytes=entry(h)["nbytes"] + 4), "nbytes must be"),
        (lambda h: entry(h).update(dtype="|O"), "dtype must be '<f4'"),
        (lambda h: entry(h).update(shape=[-1]), "shape must be"),
        (lambda h: entry(h).update(shape=[2] * 9), "shape must be"),
        (lambda h: h["arrays"].append(dict(h["arrays"][0])), "unique name"),
        (lambda h: h["arrays"].append({"name": "extra", "dtype": "<f4", "shape": [3],
                                       "nbytes": 12}), "arrays need"),
        (lambda h: h.update(format="something else"), "not a fastmlp checkpoint"),
        (lambda h: h.update(version=99), "version 99"),
        (lambda h: h["training"].update(epoch="3"), r"training\.epoch"),
        (lambda h: h["model"].update(sizes=[7, 3]), "architecture differs|invalid model"),
    ]
    for edit, message in cases:
        bad.write_bytes(forged(raw, edit))
        with pytest.raises(ValueError, match=message):
            ck.load_checkpoint(bad).load_into(model())


def test_a_huge_declared_header_is_refused_before_it_is_read(saved, tmp_path):
    path, raw = saved
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(ck.MAGIC + struct.pack("<Q", 2 ** 40) + raw[len(ck.MAGIC) + 8:])
    with pytest.raises(ValueError, match="over the 16777216 limit"):
        ck.load_checkpoint(bad)


def test_foreign_files_are_refused_and_never_executed(tmp_path):
    marker = tmp_path / "executed"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    pickled = tmp_path / "evil.ckpt"
    pickled.write_bytes(pickle.dumps(Payload()))
    npz = tmp_path / "model.npz"
    fastmlp.save(model(), npz)
    for path in (pickled, npz):
        with pytest.raises(ValueError, match="not a fastmlp checkpoint"):
            ck.load_checkpoint(path)
    assert not marker.exists()
    with pytest.raises(FileNotFoundError, match="no such file"):
        ck.load_checkpoint(tmp_path / "missing.ckpt")


def test_a_failed_write_leaves_the_previous_checkpoint(saved, monkeypatch):
    path, raw = saved

    class Crash:
        def __init__(self):
            self.n = 0

        def update(self, chunk):
            self.n += 1
            if self.n > 2:
                raise OSError("disk full")

    monkeypatch.setattr(ck.hashlib, "sha256", Crash)
    with pytest.raises(OSError, match="disk full"):
        ck.write_container(path, {"format": ck.FORMAT, "version": ck.VERSION},
                           {"a": np.ones(3, np.float32)})
    assert path.read_bytes() == raw
    assert os.listdir(path.parent) == [path.name]  # the temporary file is gone too


# ---- resume refuses what would not continue exactly -------------------------------------------

def test_resume_refuses_other_settings_data_or_models(saved):
    path, _ = saved
    X, y = data()
    with pytest.raises(ValueError, match="batch_size=32.*16"):
        quiet_train(model(), X, y, resume=path, **fresh(options(batch_size=32)))
    X2 = X.copy()
    X2[0, 0] += 1.0
    with pytest.raises(ValueError, match="training data"):
        quiet_train(model(), X2, y, resume=path, **fresh(options()))
    with pytest.raises(ValueError, match="architecture differs"):
        quiet_train(fastmlp.MLP([7, 18, 9, 3], seed=3, batchnorm=[True, False, False],
                                dropout=0.25), X, y, resume=path, **fresh(options()))
    with pytest.raises(ValueError, match=r"callbacks \['ReduceLROnPlateau', 'EarlyStopping'\]"):
        quiet_train(model(), X, y, resume=path, **fresh(options(early_stopping=False)))


def test_checkpoint_options_are_checked(tmp_path):
    X, y = data()
    m = model()
    with pytest.raises(ValueError, match="resume=True resumes from checkpoint=PATH"):
        fastmlp.train(m, X, y, loss="cross_entropy", resume=True, verbose=0)
    with pytest.raises(FileNotFoundError, match="resume: .*no such file"):
        fastmlp.train(m, X, y, loss="cross_entropy", resume=tmp_path / "none", verbose=0)
    with pytest.raises(ValueError, match="checkpoint: folder .* does not exist"):
        fastmlp.train(m, X, y, loss="cross_entropy", checkpoint=tmp_path / "a" / "b.ckpt",
                      verbose=0)
    with pytest.raises(TypeError, match="checkpoint: expected a file path, got int"):
        fastmlp.train(m, X, y, loss="cross_entropy", checkpoint=3, verbose=0)
    with pytest.raises(ValueError, match="checkpoint_every"):
        fastmlp.train(m, X, y, loss="cross_entropy", checkpoint=tmp_path / "c",
                      checkpoint_every=0, verbose=0)
