"""``fastmlp train / predict / evaluate / info / bench``: a round trip through files agrees with
the Python API, labels come back in their original values, the inputs are standardised with the
training rows, and unusable input exits 2 with one line that names the problem."""
from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import fastmlp
from fastmlp.__main__ import main
from fastmlp.data_files import DataFileError, read_columns, read_table

# The child interpreter must run the fastmlp under test (source tree or site-packages).
PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(fastmlp.__file__)))
SPECIES = np.array(["setosa", "versicolor", "virginica"])


def cli(capsys, *args):
    """(exit code, stdout, stderr) of ``fastmlp ARGS`` run in this process."""
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def flowers(n: int, seed: int):
    """(X (n, 3) float64, text labels (n,)): the class is decided by feature 'a' alone; 'b'
    is offset by 500 and scaled by 100 and 'c' scaled by 0.01, so that only standardised inputs
    train quickly."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 3)) * [1.0, 100.0, 0.01] + [0.0, 500.0, 0.0]
    k = (X[:, 0] > -0.45).astype(int) + (X[:, 0] > 0.45).astype(int)
    return X, SPECIES[k]


@pytest.fixture
def iris(tmp_path):
    """A training CSV with text labels in the third of four columns, and a test CSV with the
    columns in another order plus a text ID column the model must ignore."""
    X, labels = flowers(151, seed=0)
    train = write_csv(tmp_path / "flowers.csv", ["a", "b", "species", "c"],
                      [[f"{r[0]:.6g}", f"{r[1]:.6g}", s, f"{r[2]:.6g}"]
                       for r, s in zip(X, labels)])
    Xt, lt = flowers(37, seed=1)
    test = write_csv(tmp_path / "new.csv", ["id", "c", "species", "b", "a"],
                     [[f"row{i}", f"{r[2]:.6g}", s, f"{r[1]:.6g}", f"{r[0]:.6g}"]
                      for i, (r, s) in enumerate(zip(Xt, lt))])
    return {"train": train, "test": test, "X": X.astype(np.float32), "labels": labels,
            "X_test": Xt.astype(np.float32), "labels_test": lt}


@pytest.fixture
def iris_model(capsys, tmp_path, iris):
    path = tmp_path / "flowers.npz"
    code, out, err = cli(capsys, "train", iris["train"], "--target", "species", "--hidden",
                         "16", "--epochs", "40", "--batch-size", "16", "--lr", "0.01",
                         "--out", path)
    assert code == 0, err
    return path, out, err


# ---- train ---------------------------------------------------------------------------------
def test_train_text_labels_saves_classes_features_and_scaling(iris, iris_model):
    path, out, err = iris_model
    assert "task: classification (auto: the target holds text labels (3 distinct))" in out
    assert "3 classes: 'setosa', 'versicolor', 'virginica'" in out
    assert "data: " + str(iris["train"]) + ": 151 rows (136 training, 15 validation), " \
        "3 features, 1 target" in out
    assert re.search(r"^trained 40 epochs in [\d.]+ m?s$", out, re.M)
    val = re.search(r"^validation rows \(15\): loss ([\d.]+), accuracy ([\d.]+)$", out, re.M)
    assert val and float(val.group(2)) >= 0.8, out
    assert f"saved {path}" in out
    # The progress bar: one line per epoch on stderr (not a terminal).
    assert len(re.findall(r"^Epoch \d+/40 ", err, re.M)) == 40

    model = fastmlp.load(path)
    meta = model.metadata
    assert meta["task"] == "classification" and meta["loss"] == "cross_entropy"
    assert meta["classes"] == ["setosa", "versicolor", "virginica"]
    assert meta["feature_names"] == ["a", "b", "c"] and meta["target"] == ["species"]
    assert meta["training"]["epochs_run"] == 40 and meta["training"]["lr"] == 0.01
    assert meta["fastmlp_version"] == fastmlp.__version__
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", meta["created"])
    assert model.sizes == [3, 16, 3] and model.output_activation == "softmax"
    # Standardised with the 136 training rows, not all 151: the seeded split is reproducible.
    n_val = 15
    rows = np.sort(np.random.default_rng(0).permutation(151)[n_val:])
    X_tr = iris["X"][rows].astype(np.float64)
    np.testing.assert_allclose(model.input_mean, X_tr.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.input_scale, X_tr.std(0), rtol=1e-5)
    assert not np.allclose(model.input_mean, iris["X"].astype(np.float64).mean(0), rtol=1e-7,
                           atol=0)
    assert sorted(os.listdir(path.parent)) == ["flowers.csv", "flowers.npz", "new.csv"]


def test_early_stopping_and_verbose(capsys, tmp_path, iris):
    path = tmp_path / "es.npz"
    code, out, err = cli(capsys, "train", iris["train"], "--target", "species", "--hidden", "8",
                         "--epochs", "300", "--lr", "0.05", "--patience", "2", "--verbose",
                         "--out", path)
    assert code == 0, err
    assert fastmlp.load(path).summary() in out  # --verbose prints the layer table
    training = fastmlp.load(path).metadata["training"]
    assert training["early_stopping"] is True and training["patience"] == 2
    run = training["epochs_run"]
    assert 3 <= run < 300
    assert f"(early stopping: {run} of 300 epochs run, the best epoch's weights kept)" in out
    assert len(re.findall(r"^Epoch \d+/300 ", err, re.M)) == run


def test_integer_labels_keep_their_values(capsys, tmp_path):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((61, 2)).astype(np.float32)
    y = np.array([3, 7, 12])[(X[:, 1] > 0).astype(int) + (X[:, 1] > 0.8).astype(int)]
    data = write_csv(tmp_path / "ints.csv", ["u", "label", "v"],
                     [[f"{a:.7g}", int(t), f"{b:.7g}"] for (a, b), t in zip(X, y)])
    model_path = tmp_path / "ints.npz"
    code, out, err = cli(capsys, "train", data, "--target", "label", "--hidden", "8",
                         "--epochs", "3", "-q", "--out", model_path)
    assert (code, err) == (0, "")
    assert "task:" not in out and "training rows (55): loss" in out
    model = fastmlp.load(model_path)
    assert model.metadata["classes"] == [3, 7, 12]

    pred = tmp_path / "pred.csv"
    code, out, err = cli(capsys, "predict", model_path, data, "--out", pred)
    assert (code, err) == (0, "")
    header, rows = read_csv(pred)
    assert header == ["label"] and len(rows) == 61
    expected = np.array([3, 7, 12])[model.predict_classes(X)]
    assert [int(r[0]) for r in rows] == expected.tolist()

    # --task regression fits the same integers as numbers: one output.
    code, out, err = cli(capsys, "train", data, "--target", "label", "--task", "regression",
                         "--hidden", "8", "--epochs", "2", "-q", "--out", model_path)
    assert (code, err) == (0, "")
    assert re.search(r"^training rows \(55\): mse [\d.]+, mae [\d.]+, r2 -?[\d.]+$", out, re.M)
    model = fastmlp.load(model_path)
    assert model.sizes[-1] == 1 and model.metadata["classes"] is None


def test_npz_integer_labels_and_digits(capsys, tmp_path):
    rng = np.random.default_rng(4)
    X = rng.standard_normal((40, 5)).astype(np.float32)
    data = tmp_path / "d.npz"
    np.savez(data, X=X, y=(X[:, 0] > 0).astype(np.int64))
    model_path = tmp_path / "m.npz"
    code, out, err = cli(capsys, "train", data, "--hidden", "3", "--epochs", "2", "-q",
                         "--validation-split", "0", "--out", model_path)
    assert (code, err) == (0, "")
    assert "validation rows" not in out
    meta = fastmlp.load(model_path).metadata
    assert meta["feature_names"] == [f"x{j}" for j in range(5)] and meta["classes"] == [0, 1]
    code, out, err = cli(capsys, "evaluate", model_path, data, "--json")
    assert (code, err) == (0, "")
    assert json.loads(out)["rows"] == 40
    # Text labels stored in an archive (a str array needs no pickle).
    np.savez(data, X=X, y=np.where(X[:, 0] > 0, "hi", "lo"))
    code, out, err = cli(capsys, "train", data, "--hidden", "3", "--epochs", "2", "-q",
                         "--validation-split", "0", "--out", model_path)
    assert (code, err) == (0, "")
    assert fastmlp.load(model_path).metadata["classes"] == ["hi", "lo"]

    # digits: trained on the training part, evaluated on the held-out test part.
    code, out, err = cli(capsys, "train", "digits", "--hidden", "17", "--epochs", "1", "-q",
                         "--out", model_path)
    assert (code, err) == (0, "")
    code, out, err = cli(capsys, "evaluate", model_path, "digits", "--json")
    assert (code, err) == (0, "")
    result = json.loads(out)
    _, _, X_test, y_test = fastmlp.datasets.load_digits(seed=0)
    model = fastmlp.load(model_path)
    assert result["rows"] == len(y_test) == 359
    assert result["accuracy"] == pytest.approx(float((model.predict_classes(X_test) ==
                                                      y_test).mean()))


# ---- predict and evaluate --------------------------------------------------------------------
def test_predict_picks_columns_by_name_and_agrees_with_the_api(capsys, tmp_path, iris,
                                                               iris_model):
    path, _, _ = iris_model
    model = fastmlp.load(path)
    pred = tmp_path / "pred.csv"
    code, out, err = cli(capsys, "predict", path, iris["test"], "--proba", "--out", pred)
    assert (code, err) == (0, "")
    assert out == f"wrote 37 predictions of {path} on {iris['test']} to {pred}\n"
    header, rows = read_csv(pred)
    assert header == ["species", "p_setosa", "p_versicolor", "p_virginica"]
    # new.csv holds the columns as id, c, species, b, a: the model must read a, b, c.
    proba = model.predict_proba(iris["X_test"])
    got = np.array([[float(v) for v in r[1:]] for r in rows])
    np.testing.assert_allclose(got, proba, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-5)
    assert [r[0] for r in rows] == SPECIES[proba.argmax(1)].tolist()
    assert not any(f.startswith(".") for f in os.listdir(tmp_path))  # no temporary files

    # Without --out the CSV goes to stdout.
    code, out, err = cli(capsys, "predict", path, iris["test"])
    assert (code, err) == (0, "")
    assert out.splitlines() == ["species"] + [r[0] for r in rows]

    # evaluate scores the labels predict wrote against the truth in the file.
    code, out, err = cli(capsys, "evaluate", path, iris["test"], "--json")
    assert (code, err) == (0, "")
    result = json.loads(out)
    accuracy = float(np.mean([r[0] == t for r, t in zip(rows, iris["labels_test"])]))
    truth = np.searchsorted(SPECIES, iris["labels_test"])
    expected = fastmlp.evaluate(model, iris["X_test"], truth, loss="cross_entropy")
    assert result["accuracy"] == pytest.approx(accuracy)
    assert result["loss"] == pytest.approx(expected["loss"], rel=1e-6)
    assert (result["rows"], result["task"]) == (37, "classification")
    code, out, err = cli(capsys, "evaluate", path, iris["test"])
    assert out.splitlines() == [
        f"{path} on {iris['test']}: 37 rows, classification (3 classes)",
        f"loss {result['loss']:.4f}, accuracy {result['accuracy']:.4f}"]


def test_regression_round_trip(capsys, tmp_path):
    rng = np.random.default_rng(5)
    X = rng.standard_normal((97, 3))
    X[:, 2] *= 1000.0
    y = X[:, 0] - 0.5 * X[:, 1] + X[:, 2] / 1000.0 + 0.05 * rng.standard_normal(97)
    data = write_csv(tmp_path / "houses.csv", ["a", "b", "big", "price"],
                     [[*(f"{v:.7g}" for v in r), f"{t:.7g}"] for r, t in zip(X, y)])
    model_path = tmp_path / "houses.npz"
    code, out, err = cli(capsys, "train", data, "--target", "price", "--hidden", "16",
                         "--epochs", "60", "--lr", "0.01", "--out", model_path)
    assert code == 0, err
    assert "task: regression (auto: the target is not one column of integers" in out
    pred = tmp_path / "p.csv"
    code, _, err = cli(capsys, "predict", model_path, data, "--out", pred)
    assert (code, err) == (0, "")
    header, rows = read_csv(pred)
    assert header == ["price"]
    values = np.array([float(r[0]) for r in rows])
    X_file, _, _ = read_table(data, "price")  # X as the CSV holds it (7 digits)
    np.testing.assert_allclose(values, fastmlp.load(model_path).predict(X_file)[:, 0],
                               rtol=1e-6)
    code, out, err = cli(capsys, "evaluate", model_path, data, "--json")
    assert (code, err) == (0, "")
    result = json.loads(out)
    truth = np.array([float(f"{t:.7g}") for t in y])
    assert result["mse"] == pytest.approx(np.mean((values - truth) ** 2), rel=1e-5)
    assert result["mae"] == pytest.approx(np.mean(np.abs(values - truth)), rel=1e-5)
    assert result["r2"] == pytest.approx(1 - np.sum((values - truth) ** 2) /
                                         np.sum((truth - truth.mean()) ** 2), rel=1e-5)
    assert result["r2"] > 0.8  # learnt, thanks to the stored standardisation of 'big'


def test_info_reads_a_version_1_file(capsys):
    path = os.path.join(os.path.dirname(__file__), "data", "model_v1.npz")
    code, out, err = cli(capsys, "info", path)
    assert (code, err) == (0, "")
    assert out.startswith(f"file: {path} (fastmlp.MLP format version 1)\n")
    assert f"architecture: MLP {'-'.join(map(str, fastmlp.load(path).sizes))}" in out


def test_model_saved_without_metadata_is_used_by_position(capsys, tmp_path):
    model = fastmlp.MLP([2, 3], output_activation="softmax", seed=1)
    path = tmp_path / "plain.npz"
    fastmlp.save(model, path)
    X = np.random.default_rng(6).standard_normal((7, 2)).astype(np.float32)
    data = write_csv(tmp_path / "x.csv", ["p", "q"], [[f"{a:.7g}", f"{b:.7g}"] for a, b in X])
    code, out, err = cli(capsys, "predict", path, data)
    assert (code, err) == (0, "")
    assert out.splitlines() == ["prediction"] + [str(k) for k in model.predict_classes(X)]
    code, out, err = cli(capsys, "info", path)
    assert (code, err) == (0, "")
    assert "task: classification (no metadata: guessed from the output activation)" in out
    assert "features (2): not named" in out and "input standardization: none" in out


# ---- info --------------------------------------------------------------------------------------
def test_info_describes_the_model(capsys, iris_model):
    path, _, _ = iris_model
    model = fastmlp.load(path)
    code, out, err = cli(capsys, "info", path)
    assert (code, err) == (0, "")
    assert out.startswith(f"file: {path} (fastmlp.MLP format version 2, written by fastmlp "
                          f"{fastmlp.__version__})\n")
    for line in ["task: classification, loss cross_entropy",
                 "classes (3): 'setosa', 'versicolor', 'virginica'", "target: species",
                 "features (3): a, b, c", model.summary(),
                 f"parameters: {model.count_params():,} ({model.count_params():,} trainable)",
                 "input standardization: stored"]:
        assert line in out, line
    assert re.search(r"^training: data .*flowers\.csv, rows 151, .*epochs 40, .*lr 0\.01",
                     out, re.M)
    assert re.search(r"^scores on the validation rows: loss [\d.]+, accuracy [\d.]+$", out,
                     re.M)
    code, out, err = cli(capsys, "info", path, "--json")
    info = json.loads(out)
    assert (info["format"], info["version"]) == ("fastmlp.MLP", 2)
    assert info["sizes"] == model.sizes and info["parameters"] == model.count_params()
    assert [l["parameters"] for l in info["layers"]] == [l.n_params for l in model.layers]
    assert info["metadata"] == model.metadata and info["input_standardization"] is True


# ---- bench ---------------------------------------------------------------------------------
def test_bench_quick_prints_a_table(capsys):
    code, out, err = cli(capsys, "bench", "--quick")
    assert (code, err) == (0, "")
    info = fastmlp.cpu_info()
    assert f"ISA {info['isa']}, {info['num_threads']} threads" in out.splitlines()[0]
    rows = re.findall(r"^(digits 64-300-100-10|mnist-sized 784-300-100-10)\s+200\s+"
                      r"([\d.]+) (us|ms)\s+([\d.]+)\s+([\d.]+) (us|ms)\s+([\d.]+)\s+"
                      r"([\d.]+)x$", out, re.M)
    assert [r[0] for r in rows] == ["digits 64-300-100-10", "mnist-sized 784-300-100-10"]
    for _, t1, u1, g1, t2, u2, g2, ratio in rows:
        fast = float(t1) * (1e-6 if u1 == "us" else 1e-3)
        slow = float(t2) * (1e-6 if u2 == "us" else 1e-3)
        assert float(ratio) == pytest.approx(slow / fast, rel=0.05, abs=0.06)
        assert float(g1) > 0 and float(g2) > 0


@pytest.mark.parametrize("case", __import__("fastmlp.cli_bench", fromlist=["CASES"]).CASES,
                         ids=lambda c: c[0])
def test_bench_data_has_every_step_it_times(case):
    """The per-step time divides a call's time by `steps`: the data must hold steps x batch
    rows (the digits have only 1,438, which once made a 40-step call run 7 steps)."""
    from fastmlp.cli_bench import _data
    _, sizes, batch, steps, loss = case
    X, y = _data(sizes, batch * steps, loss)
    assert len(X) == len(y) == batch * steps and X.shape[1] == sizes[0]


def test_step_flops_counts_forward_and_backward_products():
    from fastmlp.cli_bench import step_flops
    # 3-5-2, batch 7: forward 2*7*(15+10), dW the same, dx only for the second layer.
    assert step_flops([3, 5, 2], 7) == 2 * 7 * (15 + 10) * 2 + 2 * 7 * 10


# ---- the console entry in a fresh interpreter -----------------------------------------------
def test_python_dash_m_round_trip(tmp_path, iris):
    env = dict(os.environ, PYTHONPATH=PYTHON_DIR)
    model_path = tmp_path / "m.npz"
    run = [sys.executable, "-m", "fastmlp"]
    ok = subprocess.run(run + ["train", str(iris["train"]), "--target", "species", "--hidden",
                               "4", "--epochs", "2", "-q", "--out", str(model_path)],
                        env=env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert f"saved {model_path}" in ok.stdout
    bad = subprocess.run(run + ["predict", str(model_path), str(tmp_path / "gone.csv")],
                         env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.splitlines() == [
        f"fastmlp predict: error: {tmp_path / 'gone.csv'}: no such file; DATA is 'digits', a "
        f".csv file or an .npz file"]


# ---- unusable input: exit 2, one line naming the problem ------------------------------------
def _text(path, text):
    path.write_text(text)
    return path


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def _model(path, n_inputs=3, **metadata):
    m = fastmlp.MLP([n_inputs, 4, 3], output_activation="softmax", seed=0)
    m.metadata = metadata
    fastmlp.save(m, path)
    return path


ABC = dict(task="classification", feature_names=["a", "b", "c"], target=["y"],
           classes=["p", "q", "r"])
TRAIN_CSV = "a,b,y\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(20))
ERRORS = {
    "missing data file": (lambda d: ["train", d / "nope.csv", "--target", "y", "--out",
                                     d / "m.npz"], ["fastmlp train", "nope.csv", "no such file"]),
    "missing target column": (lambda d: ["train", _text(d / "t.csv", TRAIN_CSV), "--target",
                                         "z", "--out", d / "m.npz"],
                              ["'z' is not in the header", "'a', 'b', 'y'"]),
    "non-numeric feature": (lambda d: ["train", _text(d / "t.csv", TRAIN_CSV + "4,oops,1\n"),
                                       "--target", "y", "--out", d / "m.npz"],
                            ["column 'b', row 21 (line 22)", "'oops'"]),
    "out directory missing": (lambda d: ["train", _text(d / "t.csv", TRAIN_CSV), "--target",
                                         "y", "--out", d / "no" / "m.npz"],
                              ["--out", "does not exist"]),
    "single class": (lambda d: ["train", _text(d / "t.csv", "a,y\n1,x\n2,x\n3,x\n"),
                                "--target", "y", "--out", d / "m.npz"],
                     ["single class 'x'", "at least two"]),
    "text target as regression": (lambda d: ["train", _text(d / "t.csv", "a,y\n1,x\n2,w\n"),
                                             "--target", "y", "--task", "regression", "--out",
                                             d / "m.npz"], ["--task regression", "'x'"]),
    "empty validation set": (lambda d: ["train", _text(d / "t.csv", "a,y\n1,0\n2,1\n3,0\n"),
                                        "--target", "y", "--out", d / "m.npz"],
                             ["--validation-split", "0.1 of 3 rows", "--validation-split 0"]),
    "bad optimizer": (lambda d: ["train", "digits", "--optimizer", "adamax", "--out",
                                 d / "m.npz"], ["--optimizer", "'adamax'", "adam, adamw"]),
    "missing model": (lambda d: ["predict", d / "gone.npz", "digits"],
                      ["fastmlp predict", "MODEL", "gone.npz", "no such file"]),
    "csv as model": (lambda d: ["evaluate", _text(d / "t.csv", TRAIN_CSV), "digits"],
                     ["fastmlp evaluate", "t.csv", "not a fastmlp model file"]),
    "npz that is not a model": (lambda d: ["info", _npz(d / "x.npz", X=np.zeros(2))],
                                ["fastmlp info", "x.npz", "not a fastmlp model"]),
    "missing feature column": (lambda d: ["predict", _model(d / "m.npz", **ABC),
                                          _text(d / "x.csv", "a,c\n1,2\n")],
                               ["feature column 'b' is not in the header", "'a', 'c'"]),
    "non-numeric data": (lambda d: ["predict", _model(d / "m.npz", **ABC),
                                    _text(d / "x.csv", "c,b,a,id\n1,2,3,x\n1,two,3,y\n")],
                         ["column 'b', row 2", "'two'"]),
    "feature count mismatch": (lambda d: ["predict", _model(d / "m.npz"),
                                          _npz(d / "x.npz", X=np.ones((2, 5)))],
                               ["5 feature columns", "the model takes 3"]),
    "named npz mismatch": (lambda d: ["evaluate", _model(d / "m.npz", **ABC),
                                      _npz(d / "x.npz", X=np.ones((2, 4)), y=np.zeros(2),
                                           feature_names=np.array(["a", "b", "d", "e"]))],
                           ["feature 'c' is not in the archive's feature_names"]),
    "digits for a csv model": (lambda d: ["evaluate", _model(d / "m.npz", **ABC), "digits"],
                               ["64 pixel features", "3 features (a, b, c)"]),
    "unseen label": (lambda d: ["evaluate", _model(d / "m.npz", **ABC),
                                _text(d / "x.csv", "a,b,c,y\n1,2,3,p\n1,2,3,s\n")],
                     ["label 's' is not among the model's classes (p, q, r)"]),
    "evaluate without target": (lambda d: ["evaluate", _model(d / "m.npz"),
                                           _text(d / "x.csv", "a,b,c\n1,2,3\n")],
                                ["--target", "does not record its target column"]),
    "proba for a regressor": (lambda d: ["predict", _model(d / "m.npz", task="regression"),
                                         "digits", "--proba"], ["--proba", "regressor"]),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_unusable_input_exits_2_with_one_line(capsys, tmp_path, case):
    make_args, expected = ERRORS[case]
    args = make_args(tmp_path)
    code, out, err = cli(capsys, *args)
    assert code == 2
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"fastmlp {args[0]}: error: "), err
    for part in expected:
        assert part in lines[0], (part, lines[0])


# ---- data_files: columns by name, text labels ------------------------------------------------
def test_read_columns_and_text_targets(tmp_path):
    path = _text(tmp_path / "t.csv", "id,b,label,a\nr1,2,cat,1\nr2,4,dog,3\nr3,6,cat,5\n")
    X, y, names = read_columns(path, ["a", "b"])
    np.testing.assert_array_equal(X, [[1, 2], [3, 4], [5, 6]])
    assert y is None and names == ["a", "b"] and X.dtype == np.float32
    X, y, _ = read_columns(path, ["b"], "label", text_target=True)
    assert y.tolist() == ["cat", "dog", "cat"] and X.shape == (3, 1)
    with pytest.raises(DataFileError, match="target column 'label', row 1 .*'cat'"):
        read_columns(path, ["b"], "label")
    # A numeric target stays numeric even when text is allowed.
    X, y, names = read_table(_text(tmp_path / "n.csv", "a,y\n1,2\n3,4\n"), "y",
                             text_target=True)
    assert y.dtype == np.float64 and y.tolist() == [2.0, 4.0]
    with pytest.raises(DataFileError, match="row 2 .*an empty value"):
        read_table(_text(tmp_path / "e.csv", "a,y\n1,x\n3, \n"), "y", text_target=True)
    npz = _npz(tmp_path / "n.npz", X=np.arange(6.0).reshape(2, 3),
               feature_names=np.array(["u", "v", "w"]))
    X, y, names = read_columns(npz, ["w", "u"])
    np.testing.assert_array_equal(X, [[2, 0], [5, 3]])
    assert y is None and names == ["w", "u"]


def test_regression_targets_in_large_units_are_standardised(capsys, tmp_path):
    """A price around 3e5: trained on the standardised target, with the inverse folded into the
    output layer, the saved model predicts in the price's own units. Without standardisation
    the same run does not get off the ground (the output bias alone needs ~1e5 Adam steps)."""
    rng = np.random.default_rng(8)
    X = rng.standard_normal((300, 2))
    y = 3e5 + 5e4 * X[:, 0] - 2e4 * X[:, 1] + 1e3 * rng.standard_normal(300)
    data = write_csv(tmp_path / "prices.csv", ["rooms", "age", "price"],
                     [[f"{a:.7g}", f"{b:.7g}", f"{t:.9g}"] for (a, b), t in zip(X, y)])
    r2 = {}
    for flag in ([], ["--no-standardize"]):
        path = tmp_path / f"m{len(flag)}.npz"
        code, out, err = cli(capsys, "train", data, "--target", "price", "--hidden", "16",
                             "--epochs", "40", "--lr", "0.01", "-q", *flag, "--out", path)
        assert code == 0, err
        code, out, err = cli(capsys, "evaluate", path, data, "--json")
        r2[bool(flag)] = json.loads(out)["r2"]
        meta = fastmlp.load(path).metadata["training"]
        if not flag:
            # the training rows (90%) only: close to, not equal to, the mean of every row
            assert meta["target_scaling"]["mean"] == pytest.approx(y.mean(), rel=1e-2)
            assert meta["target_scaling"]["folded_into_output_layer"] is True
        else:
            assert meta["target_scaling"] is None
    assert r2[False] > 0.95
    assert r2[True] < 0.5
