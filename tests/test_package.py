import numpy as np
import pytest

import fastmlp
from helpers import num_threads


def test_cpu_info_reports_the_active_path():
    info = fastmlp.cpu_info()
    assert info["isa"] in ("avx2_fma", "portable")
    if not info["avx2_fma_supported"]:
        assert info["isa"] == "portable"
    assert info["num_threads"] == fastmlp.get_num_threads() >= 1


def test_set_num_threads_roundtrip_and_validation():
    with num_threads(3):
        assert fastmlp.get_num_threads() == 3
    for bad in (0, -1, 1.5, "2", True):
        with pytest.raises(ValueError, match="n: expected an integer >= 1"):
            fastmlp.set_num_threads(bad)


def test_env_variables_set_threads_and_isa():
    import subprocess
    import sys
    code = "import fastmlp; i = fastmlp.cpu_info(); print(i['num_threads'], i['isa'])"
    env = dict(__import__("os").environ, FASTMLP_NUM_THREADS="3", FASTMLP_ISA="portable")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["3", "portable"]


def test_kernel_and_reference_expose_the_same_names_and_signatures():
    import inspect
    names = set(fastmlp.kernels.__all__)
    assert names <= set(fastmlp.reference.__all__)
    for name in names:
        ks = inspect.signature(getattr(fastmlp.kernels, name))
        rs = inspect.signature(getattr(fastmlp.reference, name))
        assert list(ks.parameters) == list(rs.parameters), name
        for p in ks.parameters:
            assert ks.parameters[p].default == rs.parameters[p].default, (name, p)


def test_numpy_is_the_only_runtime_dependency():
    import pathlib
    import tomllib
    pyproject = pathlib.Path(__file__).resolve().parents[1] / "pyproject.toml"
    deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    assert [d.split(">")[0].split("=")[0].strip() for d in deps] == ["numpy"]
