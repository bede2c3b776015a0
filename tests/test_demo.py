"""The README's main job (python -m fastmlp demo) runs end to end and learns the digits."""
from __future__ import annotations

import io

from fastmlp.__main__ import main
from fastmlp.demo import run_demo


def test_demo_learns_the_digits():
    out = io.StringIO()
    accuracy = run_demo(epochs=20, verbose=0, out=out)
    assert accuracy > 0.95
    assert "test accuracy" in out.getvalue()
    assert "gradient health: no problems found" in out.getvalue()


def test_cli_rejects_bad_arguments(capsys):
    import pytest
    with pytest.raises(SystemExit):
        main(["demo", "--epochs", "0"])
    assert "--epochs" in capsys.readouterr().err


def test_demo_command_saves_a_model_the_other_commands_use(capsys, tmp_path):
    import json

    import fastmlp
    path = tmp_path / "digits.npz"
    assert main(["demo", "--epochs", "3", "--out", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"saved the model to {path}" in out
    model = fastmlp.load(path)
    assert model.input_mean is not None and model.metadata["classes"] == list(range(10))
    assert main(["evaluate", str(path), "digits", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    printed = float(out.split("test accuracy ")[1].split()[0])
    assert result["accuracy"] == __import__("pytest").approx(printed, abs=1e-4)
