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
