"""Every public function, class and method of fastmlp's public modules has a docstring (its
own or inherited from the method it overrides): the README points users to help()."""
from __future__ import annotations

import importlib
import inspect

import pytest

MODULES = ["fastmlp", "fastmlp.kernels", "fastmlp.reference", "fastmlp.callbacks",
           "fastmlp.schedules", "fastmlp.initializers", "fastmlp.datasets",
           "fastmlp.diagnostics", "fastmlp.data_files", "fastmlp.io"]


def public_objects():
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        names = getattr(module, "__all__", None) or [n for n in vars(module)
                                                     if not n.startswith("_")]
        for name in names:
            obj = getattr(module, name)
            if not (inspect.isfunction(obj) or inspect.isclass(obj) or inspect.isbuiltin(obj)):
                continue
            if not (getattr(obj, "__module__", "") or "").startswith("fastmlp"):
                continue  # re-exported from NumPy or the standard library
            if module_name != "fastmlp" and obj.__module__ not in (module_name,) and \
                    not obj.__module__.startswith(module_name + "."):
                continue  # imported from elsewhere in fastmlp: checked where it lives
            yield f"{module_name}.{name}", obj
            if inspect.isclass(obj):
                for attr, member in vars(obj).items():
                    if not attr.startswith("_") and (inspect.isfunction(member)
                                                     or isinstance(member, property)):
                        yield f"{module_name}.{name}.{attr}", getattr(obj, attr)


OBJECTS = dict(public_objects())


def test_the_walk_finds_the_api():
    for name in ("fastmlp.train", "fastmlp.MLP.predict", "fastmlp.MLP.fit_input_scaling",
                 "fastmlp.kernels.dense_forward", "fastmlp.callbacks.Callback.on_epoch_end"):
        assert name in OBJECTS


@pytest.mark.parametrize("name", sorted(OBJECTS))
def test_has_docstring(name):
    assert (inspect.getdoc(OBJECTS[name]) or "").strip(), f"{name} has no docstring"
