"""scikit-learn estimators backed by fastmlp: MLPClassifier and MLPRegressor, drop-in
replacements for sklearn.neural_network's (same parameters, defaults, fitted attributes and
stopping rule), trained by fastmlp.train in one call per fit.

Needs scikit-learn >= 1.6 (``pip install 'fastmlp[sklearn]'``); ``import fastmlp`` alone never
imports it. Inside this module ``sklearn`` is the real scikit-learn (absolute imports).
"""
from __future__ import annotations

_INSTALL = "pip install 'fastmlp[sklearn]'"

try:
    import sklearn as _sklearn
except ImportError as e:
    raise ImportError(f"fastmlp.sklearn needs scikit-learn, which is not installed: "
                      f"{_INSTALL}") from e

# validate_data (sklearn.utils.validation) and the __sklearn_tags__ protocol arrived in 1.6.
if tuple(int(p) for p in _sklearn.__version__.split(".")[:2] if p.isdigit()) < (1, 6):
    raise ImportError(f"fastmlp.sklearn needs scikit-learn >= 1.6, found "
                      f"{_sklearn.__version__}: {_INSTALL} --upgrade")

from ._classifier import MLPClassifier  # noqa: E402
from ._regressor import MLPRegressor  # noqa: E402

__all__ = ["MLPClassifier", "MLPRegressor"]
