"""``fastmlp diagnose DATA``: the command finds the problems fastmlp.diagnose finds, writes its
files, and turns unusable input into exit code 2 with one line that names the problem."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import fastmlp
from fastmlp.__main__ import main
from fastmlp.data_files import DataFileError, read_table

# Where the fastmlp under test was imported from (the source tree in development, site-packages
# after pip install): the child interpreter must run that same package.
PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(fastmlp.__file__)))
FAST = ["--probe-steps", "20"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FINDING_LINE = re.compile(r"^\[(info|warning|error)\] (\w+) \((network|layer \d+)\)", re.M)


def diagnose(capsys, *args):
    """(exit code, stdout, stderr) of ``fastmlp diagnose ARGS`` run in this process."""
    code = main(["diagnose", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def printed_kinds(out: str) -> list:
    return [m.group(2) for m in FINDING_LINE.finditer(out)]


@pytest.fixture
def n01_model(tmp_path):
    """A saved 64-30-10 sigmoid network with N(0, 1) weights: z has std ~ sqrt(64 * 0.1) on the
    digits, far into the sigmoid's flat tails."""
    model = fastmlp.MLP([64, 30, 10], activation="sigmoid", seed=0)
    rng = np.random.default_rng(0)
    for layer in model.layers:
        layer.W = rng.standard_normal(layer.W.shape).astype(np.float32)
    path = tmp_path / "n01.npz"
    fastmlp.save(model, path)
    return path


@pytest.fixture
def regression_csv(tmp_path):
    """y = a + big / 1000 + noise, where the feature 'big' is scaled by 1000."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((200, 3))
    X[:, 1] *= 1000.0
    y = X[:, 0] + X[:, 1] / 1000.0 + 0.1 * rng.standard_normal(200)
    path = tmp_path / "houses.csv"
    with open(path, "w") as f:
        f.write("a,big,c,price\n")
        for row, t in zip(X, y):
            f.write(",".join(f"{v:.7g}" for v in row) + f",{t:.7g}\n")
    return path


# ---- what the command finds ---------------------------------------------------------------
def test_n01_weights_saturate_and_fan_in_does_not(capsys, n01_model):
    code, out, err = diagnose(capsys, "digits", "--hidden", "30", "--activation", "sigmoid",
                              "--init", "fan_in", *FAST)
    assert (code, err) == (0, "")
    assert "model: new MLP 64-30-10, sigmoid hidden" in out
    assert "loss: cross_entropy (auto: the target holds 10 distinct integers" in out
    assert "saturation" not in printed_kinds(out)

    code, out, err = diagnose(capsys, "digits", "--model", n01_model, *FAST)
    assert (code, err) == (0, "")
    assert f"model: {n01_model}: MLP 64-30-10" in out
    assert "saturation" in printed_kinds(out)
    # The finding names the hidden layer (z std ~4 here: about 40% of outputs saturated).
    assert re.search(r"\[(warning|error)\] saturation \(layer 0\)", out)
    assert 'init="fan_in"' in out


def test_unscaled_csv_is_reported_and_standardize_removes_it(capsys, regression_csv):
    code, out, err = diagnose(capsys, regression_csv, "--target", "price", "--hidden", "16",
                              *FAST)
    assert (code, err) == (0, "")
    assert f"data: {regression_csv}: 200 rows, 3 features, 1 target" in out
    assert "loss: mse (auto: the target is not one column of integers" in out
    assert "unscaled_inputs" in printed_kinds(out)
    # The command names the feature to blame, which the report itself cannot.
    assert "features furthest from unit scale: 'big'" in out

    code, out, err = diagnose(capsys, regression_csv, "--target", "price", "--hidden", "16",
                              "--standardize", *FAST)
    assert (code, err) == (0, "")
    assert "inputs: standardized with their own mean and standard deviation" in out
    assert "unscaled_inputs" not in printed_kinds(out)


def test_labels_that_are_not_0_to_c_minus_1_are_remapped(capsys, tmp_path):
    rng = np.random.default_rng(2)
    X = rng.standard_normal((60, 2)).astype(np.float32)
    y = np.array([3, 7, 12])[np.arange(60) % 3]
    path = tmp_path / "three.npz"
    np.savez(path, X=X, y=y)
    code, out, err = diagnose(capsys, path, "--hidden", "8", *FAST)
    assert (code, err) == (0, "")
    assert "labels 3, 7, 12 mapped in sorted order to 0..2" in out
    assert "model: new MLP 2-8-3" in out


# ---- files ---------------------------------------------------------------------------------
def test_out_writes_the_report_json_and_pictures(capsys, tmp_path, n01_model):
    pytest.importorskip("matplotlib")
    out_dir = tmp_path / "diag" / "run1"
    code, out, err = diagnose(capsys, "digits", "--model", n01_model, "--out", out_dir, *FAST)
    assert (code, err) == (0, "")
    text = (out_dir / "report.txt").read_text()
    assert text.strip() in out
    kinds = printed_kinds(out)
    assert "saturation" in kinds
    data = json.loads((out_dir / "report.json").read_text())
    assert [f["kind"] for f in data["findings"]] == kinds
    pngs = sorted(out_dir.glob("*.png"))
    assert {p.name for p in pngs} >= {"activations.png", "gradient_flow.png", "loss.png"}
    for p in pngs:
        assert p.read_bytes()[:8] == PNG_SIGNATURE, p
    listed = out.split("wrote ")[-1].splitlines()
    assert listed[0] == f"{2 + len(pngs)} files:"
    assert {line.strip() for line in listed[1:]} == \
        {str(out_dir / n) for n in ["report.txt", "report.json"] + [p.name for p in pngs]}
    # Atomic writes leave no temporary files behind.
    assert sorted(os.listdir(out_dir)) == sorted(["report.txt", "report.json"] +
                                                 [p.name for p in pngs])


def test_out_without_matplotlib_still_writes_text_and_json(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, out, err = diagnose(capsys, "digits", "--hidden", "16", "--out", tmp_path, *FAST)
    assert (code, err) == (0, "")
    assert "pip install 'fastmlp[plot]'" in out
    assert sorted(os.listdir(tmp_path)) == ["report.json", "report.txt"]
    json.loads((tmp_path / "report.json").read_text())


def test_python_dash_m_runs_in_a_fresh_interpreter():
    env = dict(os.environ, PYTHONPATH=PYTHON_DIR)
    ok = subprocess.run([sys.executable, "-m", "fastmlp", "diagnose", "digits", "--hidden", "16",
                         *FAST], env=env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert "fastmlp diagnosis (loss=cross_entropy" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "fastmlp", "diagnose", "nowhere.csv"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2
    assert bad.stderr.splitlines() == [
        "fastmlp diagnose: error: nowhere.csv: no such file; DATA is 'digits', a .csv file or "
        "an .npz file"]


# ---- unusable input: exit 2, one line naming the problem ----------------------------------
def _write(path, text):
    path.write_text(text)
    return path


ERRORS = {
    "missing file": (lambda d: [d / "nope.csv", "--target", "y"], ["nope.csv", "no such file"]),
    "unknown extension": (lambda d: [_write(d / "t.xlsx", "a,b\n1,2\n")],
                          ["t.xlsx", "unknown file type '.xlsx'", ".csv or .npz"]),
    "csv without --target": (lambda d: [_write(d / "t.csv", "a,b,y\n1,2,3\n")],
                             ["--target", "'a', 'b', 'y'"]),
    "target not in header": (lambda d: [_write(d / "t.csv", "a,b,y\n1,2,3\n"), "--target", "z"],
                             ["'z' is not in the header", "'a', 'b', 'y'"]),
    "non-numeric value": (lambda d: [_write(d / "t.csv", "a,b,y\n1,2,3\n4,oops,5\n"),
                                     "--target", "y"],
                          ["column 'b', row 2 (line 3)", "'oops'"]),
    "npz without y": (lambda d: [_npz(d / "t.npz", X=np.zeros((4, 2)))],
                      ["no array 'y'", "'X'"]),
    "npz needing pickle": (lambda d: [_npz(d / "t.npz", X=np.zeros((3, 2)),
                                           y=np.array([1, "a", None], dtype=object))],
                           ["'y'", "pickle"]),
    "not a fastmlp model": (lambda d: ["digits", "--model", _npz(d / "m.npz", X=np.zeros(2))],
                            ["--model", "m.npz", "not a fastmlp model"]),
    "missing model": (lambda d: ["digits", "--model", d / "gone.npz"],
                      ["--model", "gone.npz", "no such file"]),
    "model and architecture flags": (lambda d: ["digits", "--model", d / "m.npz", "--hidden",
                                                "8"], ["--hidden", "--model"]),
    "negative lr": (lambda d: ["digits", "--lr", "-1"], ["lr", "-1.0"]),
    "unknown activation": (lambda d: ["digits", "--activation", "swish"],
                           ["activation", "'swish'", "relu"]),
    "bad --hidden": (lambda d: ["digits", "--hidden", "30,x"], ["--hidden", "'30,x'"]),
    "cross_entropy on real targets": (
        lambda d: [_write(d / "t.csv", "a,y\n1,0.5\n2,1.5\n"), "--target", "y", "--loss",
                   "cross_entropy"], ["--loss cross_entropy", "0.5"]),
    "--out is a file": (lambda d: ["digits", "--out", _write(d / "f.txt", "")],
                        ["--out", "f.txt", "not a directory"]),
}


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("case", list(ERRORS))
def test_unusable_input_exits_2_with_one_line(capsys, tmp_path, case):
    make_args, expected = ERRORS[case]
    code, out, err = diagnose(capsys, *make_args(tmp_path), *FAST)
    assert code == 2
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastmlp diagnose: error: "), err
    for part in expected:
        assert part in lines[0], (part, lines[0])


def test_model_for_other_data_is_refused(capsys, tmp_path):
    path = tmp_path / "small.npz"
    fastmlp.save(fastmlp.MLP([3, 4, 10], seed=0), path)
    code, _, err = diagnose(capsys, "digits", "--model", path, *FAST)
    assert code == 2
    assert "the model takes 3 features, got 64" in err


# ---- read_table ---------------------------------------------------------------------------
def test_read_table_csv_and_npz(tmp_path):
    X, y, names = read_table(_write(tmp_path / "t.csv", "\ufeffa, y ,b\n1,2,3\n4,5,6\n\n"),
                             target="y")
    assert X.dtype == np.float32 and X.flags.c_contiguous
    np.testing.assert_array_equal(X, [[1, 3], [4, 6]])
    np.testing.assert_array_equal(y, [2, 5])
    assert names == ["a", "b"]
    X, y, names = read_table(tmp_path / "t.csv", target=["a", "b"])
    assert y.shape == (2, 2) and names == ["y"]

    path = _npz(tmp_path / "d.npz", X=np.arange(6.0).reshape(3, 2), y=np.array([0, 1, 1]),
                feature_names=np.array(["u", "v"]))
    X, y, names = read_table(path)
    assert X.dtype == np.float32 and y.dtype.kind == "i" and names == ["u", "v"]
    with pytest.raises(DataFileError, match="CSV files only"):
        read_table(path, target="y")
    with pytest.raises(DataFileError, match=r"column 'a', row 1 \(line 2\): an empty value"):
        read_table(_write(tmp_path / "e.csv", "a,y\n,1\n"), target="y")
    with pytest.raises(DataFileError, match="'nan' is not finite"):
        read_table(_write(tmp_path / "n.csv", "a,y\nnan,1\n"), target="y")
    with pytest.raises(DataFileError, match="line 3 has 3 fields, the header has 2"):
        read_table(_write(tmp_path / "r.csv", "a,y\n1,2\n1,2,3\n"), target="y")
