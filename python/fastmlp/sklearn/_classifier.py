"""MLPClassifier: sklearn.neural_network.MLPClassifier's interface on fastmlp."""
from __future__ import annotations

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.metrics import accuracy_score
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import column_or_1d
from sklearn.utils.multiclass import _check_partial_fit_first_call, type_of_target, unique_labels
from sklearn.utils.validation import check_is_fitted, validate_data

from . import _docs
from ._base import BaseMLP, Targets


class MLPClassifier(ClassifierMixin, BaseMLP):
    __doc__ = f"""Multi-layer perceptron classifier trained by fastmlp: a drop-in replacement for
sklearn.neural_network.MLPClassifier (same parameters, defaults, fitted attributes and stopping
rule), with fastmlp's extras as extra keyword parameters.

Heads, as sklearn: multi-class y -> softmax outputs and cross-entropy; binary y -> one
logistic output and binary cross-entropy (predict_proba still gives two columns); a 2-D
indicator y (multi-label) -> one logistic output per label. Labels may be any sortable values
(strings, integers); classes_ holds them in sorted order.

Parameters
----------
{_docs.fill(_docs.PARAMETERS, score="accuracy")}
Attributes
----------
classes_ : ndarray of shape (n_classes,)
    Class labels (for multi-label y: the label indices 0..n_labels-1).

{_docs.fill(_docs.ATTRIBUTES, score="accuracy",
                         out="'softmax' for multi-class, 'logistic' otherwise")}
Notes
-----
{_docs.NOTES}
Examples
--------
>>> from fastmlp.datasets import load_digits
>>> from fastmlp.sklearn import MLPClassifier
>>> X_train, y_train, X_test, y_test = load_digits()
>>> clf = MLPClassifier(hidden_layer_sizes=(64,), max_iter=500, random_state=0)
>>> clf = clf.fit(X_train, y_train)
>>> clf.predict_proba(X_test[:1]).shape, clf.score(X_test, y_test) > 0.9
((1, 10), True)
"""

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 optimizer=None, init=None, batchnorm=False, dropout=0.0, clip_norm=None,
                 clip_value=None, weight_decay=0.0):
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes, activation=activation, solver=solver,
            alpha=alpha, batch_size=batch_size, learning_rate=learning_rate,
            learning_rate_init=learning_rate_init, power_t=power_t, max_iter=max_iter,
            shuffle=shuffle, random_state=random_state, tol=tol, verbose=verbose,
            warm_start=warm_start, momentum=momentum, nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping, validation_fraction=validation_fraction,
            beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, n_iter_no_change=n_iter_no_change,
            max_fun=max_fun, optimizer=optimizer, init=init, batchnorm=batchnorm,
            dropout=dropout, clip_norm=clip_norm, clip_value=clip_value,
            weight_decay=weight_decay)

    def _validate_input(self, X, y, incremental, reset):
        """sklearn's: X checked, labels binarized (classes_ fixed on a fresh fit), then the
        head: softmax + cross_entropy on class indices for multi-class, sigmoid +
        binary_cross_entropy on the 0/1 columns for binary and multi-label."""
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError(f"warm_start can only be used where `y` has the same "
                                     f"classes as in the previous call to fit. Previously got "
                                     f"{self.classes_}, `y` has {classes}")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has "
                                 f"{self.classes_}. 'y' has {classes}.")
        Y = self._label_binarizer.transform(y)
        if self._label_binarizer.y_type_ == "multiclass":
            values = np.ascontiguousarray(Y.argmax(axis=1), dtype=np.int64)
            loss, out = "cross_entropy", "softmax"
        else:
            values = np.ascontiguousarray(Y, dtype=np.float32)
            loss, out = "binary_cross_entropy", "sigmoid"
        n_outputs = Y.shape[1]
        # sklearn stratifies the early-stopping split for binary targets only.
        return X, Targets(values, loss, out, n_outputs,
                          stratify=Y if n_outputs == 1 else None, scored=y)

    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over (X, y), continuing from the current network.

        classes: all labels that will ever appear (required on the first call, as sklearn's;
        for multi-label y the binarizer is fitted on y). Returns self."""
        if _check_partial_fit_first_call(self, classes):
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        return self._fit(X, y, sample_weight, incremental=True)

    def _labels(self, outputs: np.ndarray) -> np.ndarray:
        if self.n_outputs_ == 1:
            outputs = outputs.ravel()
        return self._label_binarizer.inverse_transform(outputs)

    def predict(self, X):
        """Predicted labels (n_samples,), or an indicator matrix for multi-label y."""
        check_is_fitted(self)
        return self._labels(self._forward(X))

    def predict_proba(self, X):
        """Class probabilities (n_samples, n_classes), columns ordered as classes_ (binary:
        [1 - p, p]; multi-label: each label's independent probability)."""
        check_is_fitted(self)
        out = self._forward(X)
        if self.n_outputs_ == 1:
            p = out.ravel()
            return np.vstack([1 - p, p]).T
        return out

    def predict_log_proba(self, X):
        """log(predict_proba(X))."""
        proba = self.predict_proba(X)
        return np.log(proba, out=proba)

    def _validation_score(self, X, y, sample_weight) -> float:
        out = self.model_.predict(X)
        if not np.isfinite(out).all():
            return np.nan
        return accuracy_score(y, self._labels(out), sample_weight=sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags
