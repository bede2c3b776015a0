"""train()'s handling of a step whose loss, gradient or update is NaN/Inf (on_nonfinite="stop" or
"skip"): the epoch runner that finds the bad step and puts back the last good state, the
history.nonfinite event log, and the warning texts.

The guarantees (the step is rejected before it changes anything; "stop" keeps the last good
step's weights bit for bit) are described in train()'s docstring; _Epoch says how.
"""
from __future__ import annotations

import math

from .callbacks import History
from .diagnostics import rules
from .model import MLP

ON_NONFINITE = ("stop", "skip")
# history.nonfinite keeps the first this many events (history.skipped_batches counts them all):
# a run that skips most batches must not grow a record per step.
MAX_NONFINITE_EVENTS = 1000
_CAUSES = {"loss": "the loss became NaN/Inf in the forward pass",
           "gradient": "the gradient became NaN/Inf in the backward pass",
           "overflow": "the step overflowed float32: its loss and gradient were finite, but "
                       "the weights, optimizer state or batch-norm running statistics it "
                       "wrote became NaN/Inf"}


class _Epoch:
    """One epoch's batches through the engine, with train()'s NaN/Inf handling.

    The engine rejects a step whose loss or gradient is NaN/Inf before writing anything
    (weights, optimizer state, batch-norm statistics), then stops there or, with skip, drops
    the batch and goes on. A step that overflowed float32 with a finite loss and gradient is
    only seen afterwards (the engine checks its buffers once per call); it is then found
    exactly by replaying from the last known-good copy (the epoch's start, or the state just
    before the previous overflowing step) one step at a time: every step is deterministic, so
    the replay retraces the same weights, and the state just before the bad step is kept.

    total: sums of the accepted batches (loss_sum, correct, grad_norm_sum, rows, steps);
    events: (batch, cause, action) of this epoch; fault: (batch, cause) that ended the epoch,
    or None; fallback: None, or the batch whose starting state was put back because a replay
    did not reproduce the overflow (it cannot, short of a non-deterministic kernel).
    """

    def __init__(self, engine, data, order, lrs, step, dropout_seed, skip, buffers):
        self.engine, self.data, self.order, self.lrs = engine, data, order, lrs
        self.step, self.dropout_seed, self.skip, self.buffers = step, dropout_seed, skip, buffers
        self.total = _zero_total()
        self.events = []
        self.fault = None
        self.fallback = None
        self._anchor(0)

    def _anchor(self, batch: int) -> None:
        """Remembers the current buffers, totals and events as the known-good state before
        `batch`: replays start there (so a run of overflowing steps costs one replay each, not one
        from the epoch's start each)."""
        self.anchor = (batch, _copies(self.buffers), dict(self.total), list(self.events))

    def _run(self, b0: int, b1: int) -> dict:
        X, yt, sw = self.data
        return self.engine.run(X, yt, self.order, b0, b1, self.lrs[b0:b1], self.step + b0,
                               self.dropout_seed, sw, self.skip)

    def _add(self, log: dict) -> None:
        for key in self.total:
            self.total[key] += log[key]
        self.events += [(k, cause, "skipped") for k, cause in log["skipped"]]

    def batches(self, b0: int, b1: int) -> tuple[float, int]:
        """Trains batches [b0, b1); returns their (loss_sum, rows). Sets fault to stop."""
        loss_sum, rows, pos = 0.0, 0, b0
        while pos < b1:
            log = self._run(pos, b1)
            self._add(log)
            loss_sum, rows = loss_sum + log["loss_sum"], rows + log["rows"]
            if log["fault"] is None:
                break
            if log["fault"] != "state":
                self.fault = (log["fault_batch"], log["fault"])
                break
            bad = self._replay(log["fault_batch"])
            if bad is None:
                self.fallback = self.anchor[0]
                self._restore_anchor()
                self.fault = (log["fault_batch"], "overflow")
            elif not self.skip:
                self.fault = (bad, "overflow")
            else:
                self.events.append((bad, "overflow", "skipped"))
                self._anchor(bad + 1)
                pos = bad + 1
                continue
            break
        return loss_sum, rows

    def _restore_anchor(self) -> None:
        _, copies, total, events = self.anchor
        _put_back(self.buffers, copies)
        self.total, self.events = dict(total), list(events)

    def _replay(self, upto: int):
        """Redoes batches [anchor, upto] from the anchor, checking after each; returns the
        first whose update left NaN/Inf (the state is then just before it), or None."""
        self._restore_anchor()
        for k in range(self.anchor[0], upto + 1):
            before = _copies(self.buffers)
            log = self._run(k, k + 1)
            if log["fault"] == "state":
                _put_back(self.buffers, before)
                return k
            if log["fault"] is not None:
                return None
            self._add(log)
        return None


def _zero_total() -> dict:
    return dict(loss_sum=0.0, correct=0.0, grad_norm_sum=0.0, rows=0, steps=0)


def _copies(buffers) -> tuple:
    return tuple(b.copy() for b in buffers)


def _put_back(buffers, copies) -> None:
    for live, saved in zip(buffers, copies):
        live[...] = saved


class _NonFiniteEvents:
    """Fills history.nonfinite (dicts: step, epoch, batch, cause, action) and
    history.skipped_batches."""

    def __init__(self, history: History):
        self.history = history
        history.nonfinite = []
        history.skipped_batches = 0

    def add(self, epoch: int, step: int, events) -> None:
        h = self.history
        for batch, cause, action in events:
            h.skipped_batches += action == "skipped"
            if len(h.nonfinite) < MAX_NONFINITE_EVENTS:
                h.nonfinite.append(dict(step=step + batch, epoch=epoch, batch=batch,
                                        cause=cause, action=action))


def _advice(hp: dict, model: MLP) -> str:
    """What to try, from the diagnostics' nonfinite rule, minus what is already on."""
    finding = rules.nonfinite([], math.nan, False)[0]
    tips = [s for s in finding.suggestions
            if not (s.startswith("clip_norm") and hp["clip_norm"] is not None)
            and not (s.startswith("batchnorm") and any(l.batchnorm for l in model.layers))]
    return (f"Try {', '.join(tips)}; fastmlp.diagnose(model, X, y, loss=...) probes the "
            f"network layer by layer for the cause.")


def _stop_message(run: _Epoch, epoch: int, step: int, n_batches: int, hp: dict,
                  model: MLP) -> tuple[str, str]:
    """(history.stopped_reason, warning) for an epoch that ended training; a fault's event is
    added to run.events."""
    if run.fault is None:
        reason = (f"diverged: every batch of epoch {epoch + 1} had a NaN/Inf loss, gradient "
                  f"or update and was skipped")
        kept = "the weights are those after the last good step"
    else:
        batch, cause = run.fault
        run.events.append((batch, cause, "stopped"))
        reason = (f"diverged at step {step + batch} (epoch {epoch + 1}, batch {batch + 1} of "
                  f"{n_batches}): {_CAUSES[cause]}")
        if run.fallback is not None:
            kept = (f"the weights are those before step {step + run.fallback} (a replay to "
                    f"find the overflowing step did not reproduce it)")
        elif step + batch == 0:
            kept = "the weights are unchanged (it was the first step)"
        else:
            kept = (f"the weights are those after step {step + batch - 1}, the last good one "
                    f"(nothing of step {step + batch} was applied)")
    return reason, f"fastmlp.train: {reason}; {kept}. {_advice(hp, model)}"


def _skip_message(history: History, hp: dict, model: MLP) -> str:
    first = history.nonfinite[0]
    return (f"fastmlp.train: skipped {history.skipped_batches} batch(es) whose loss, gradient "
            f"or update was NaN/Inf (on_nonfinite='skip'; the first at step {first['step']}, "
            f"epoch {first['epoch'] + 1}: {_CAUSES[first['cause']]}); history.nonfinite lists "
            f"them. {_advice(hp, model)}")
