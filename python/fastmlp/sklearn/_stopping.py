"""scikit-learn's epoch-end logic as one fastmlp callback, so a single fastmlp.train call runs
every epoch: the loss curve, the no-improvement counter and its stopping rule, early stopping on
a validation score, and the SGD learning-rate schedules (sklearn's SGDOptimizer.iteration_ends
and trigger_stopping).
"""
from __future__ import annotations

import numpy as np

from ..callbacks import Callback


class LearningRate:
    """sklearn's SGD learning rate as a fastmlp schedule (a callable of the step).

    ``value`` is sklearn's current rate; the engine gets ``value * scale`` (see
    _params.objective_scale). 'invscaling' sets value = init / (t_ + 1) ** power_t at every
    epoch end (t_ = samples seen); 'adaptive' divides it by 5 when the stopping rule fires,
    until it falls to 1e-6. 'constant' (and every non-SGD optimizer) never changes it.
    fastmlp.train reads the schedule once per step at the start of each epoch, so a change made
    at an epoch's end applies to the whole next epoch, as in sklearn.
    """

    def __init__(self, value: float, schedule: str, scale: float, init: float, power_t: float):
        self.value = float(value)
        self.schedule = schedule
        self.scale = scale
        self.init = init
        self.power_t = power_t

    def __call__(self, step: int) -> float:
        return self.value * self.scale

    def iteration_ends(self, time_step: int) -> None:
        if self.schedule == "invscaling":
            self.value = self.init / (time_step + 1) ** self.power_t

    def trigger_stopping(self, msg: str, verbose) -> bool:
        """True to stop; 'adaptive' instead lowers the rate while it is above 1e-6."""
        if self.schedule != "adaptive":
            if verbose:
                print(msg + " Stopping.")
            return True
        if self.value <= 1e-6:
            if verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        self.value /= 5.0
        if verbose:
            print(msg + " Setting learning rate to %f" % self.value)
        return False


class SklearnEpochs(Callback):
    """Updates the estimator's sklearn attributes after every epoch and applies sklearn's rule:
    stop when the training loss (or, with a validation set, the validation score) has not
    improved by ``tol`` for more than ``n_iter_no_change`` consecutive epochs.

    est: the estimator (its n_iter_, t_, loss_, loss_curve_, best_loss_, validation_scores_,
        best_validation_score_ and _no_improvement_count are updated in place).
    n_train: rows per epoch (t_ grows by it).
    c_loss, penalty_gap: sklearn's loss = c_loss * fastmlp's + penalty_gap * sum(W**2)
        (see _params.objective_scale; the gap is non-zero only for mse with several outputs).
    validation: None, or (X_val, y_val, sample_weight_val) scored by est._validation_score.
    lr: the LearningRate shared with fastmlp.train.
    ``converged`` is True once the rule has stopped training.
    """

    def __init__(self, est, n_train: int, c_loss: float, penalty_gap: float, validation,
                 lr: LearningRate):
        super().__init__()
        self.est = est
        self.n_train = n_train
        self.c_loss = c_loss
        self.penalty_gap = penalty_gap
        self.validation = validation
        self.lr = lr
        self.converged = False

    def _sum_w2(self) -> float:
        return sum(float(np.dot(l.W.ravel(), l.W.ravel())) for l in self.est.model_.layers)

    def on_epoch_begin(self, epoch, logs=None) -> None:
        if self.penalty_gap:
            self._w2_start = self._sum_w2()

    def _sklearn_loss(self, fastmlp_loss: float) -> float:
        loss = self.c_loss * fastmlp_loss
        if self.penalty_gap:
            # Each batch's penalty uses the weights before its step; the epoch's mean of
            # sum(W**2) is taken as the mean of its first and last values.
            loss += self.penalty_gap * 0.5 * (self._w2_start + self._sum_w2())
        return loss

    def on_epoch_end(self, epoch, logs=None) -> None:
        est = self.est
        est.n_iter_ += 1
        est.t_ += self.n_train
        est.loss_ = self._sklearn_loss(logs["loss"])
        est.loss_curve_.append(est.loss_)
        if est.verbose:
            print("Iteration %d, loss = %.8f" % (est.n_iter_, est.loss_))
        self._count_no_improvement()
        self.lr.iteration_ends(est.t_)
        if est._no_improvement_count > est.n_iter_no_change:
            what = "Validation score" if self.validation is not None else "Training loss"
            msg = ("%s did not improve more than tol=%f for %d consecutive epochs."
                   % (what, est.tol, est.n_iter_no_change))
            if self.lr.trigger_stopping(msg, est.verbose):
                self.stop_training = True
                self.converged = True
            else:
                est._no_improvement_count = 0

    def _count_no_improvement(self) -> None:
        """sklearn's _update_no_improvement_count, including its best-weights snapshot."""
        est = self.est
        if self.validation is not None:
            score = est._validation_score(*self.validation)
            est.validation_scores_.append(score)
            if est.verbose:
                print("Validation score: %f" % score)
            if score < est.best_validation_score_ + est.tol:
                est._no_improvement_count += 1
            else:
                est._no_improvement_count = 0
            if score > est.best_validation_score_:
                est.best_validation_score_ = score
                est._best_weights = est.model_.get_weights()
        else:
            if est.loss_curve_[-1] > est.best_loss_ - est.tol:
                est._no_improvement_count += 1
            else:
                est._no_improvement_count = 0
            if est.loss_curve_[-1] < est.best_loss_:
                est.best_loss_ = est.loss_curve_[-1]
