"""Docstring sections the two estimators share (sklearn's numpydoc style), so each parameter is
described once. Differences from scikit-learn are marked "Differs from sklearn"; fill() puts
in {score} and {out} per estimator (str.format would trip on the braces of the option sets).
"""


def fill(text: str, **values: str) -> str:
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text


PARAMETERS = """\
hidden_layer_sizes : int or array-like of shape (n_layers - 2,), default=(100,)
    The ith element is the number of neurons in the ith hidden layer; () for none.

activation : str or list of str, default='relu'
    Hidden-layer activation: sklearn's 'identity', 'logistic', 'tanh', 'relu', or any of
    fastmlp's: 'sigmoid' (= 'logistic'), 'leaky_relu' (slope 0.01), 'elu', 'selu', 'gelu'.
    A list gives one per hidden layer (fastmlp extension).

solver : {'adam', 'sgd'}, default='adam'
    'sgd' is SGD with momentum (``momentum``, ``nesterovs_momentum``, ``learning_rate``);
    'adam' is Adam (``beta_1``, ``beta_2``, ``epsilon``). 'lbfgs' raises ValueError at fit:
    fastmlp has no full-batch quasi-Newton solver; use sklearn's MLP for it. Overridden by
    ``optimizer`` when that is given.

alpha : float, default=0.0001
    sklearn's L2 penalty: each batch's loss gets ``0.5 * alpha * sum(W**2) / batch weight``.
    It maps onto fastmlp's ``l2=`` with the full batch size (times the mean sample weight),
    so it is exact for full batches; differs from sklearn only in the last, smaller batch of
    an epoch and, with uneven sample weights, in batches whose mean weight is not the
    overall mean.

batch_size : int or 'auto', default='auto'
    Minibatch size; 'auto' = min(200, n_samples). Larger than n_samples: clipped, with a
    UserWarning (as sklearn).

learning_rate : {'constant', 'invscaling', 'adaptive'}, default='constant'
    sklearn's schedules, used with the SGD optimizers only (solver='sgd', or optimizer 'sgd',
    'momentum', 'nesterov'): 'invscaling' sets the rate to
    ``learning_rate_init / (t_ + 1) ** power_t`` at each epoch end; 'adaptive' divides it by
    5 each time the stopping rule below fires, stopping once it is <= 1e-6.

learning_rate_init : float, default=0.001
    Initial step size.

power_t : float, default=0.5
    Exponent of 'invscaling'.

max_iter : int, default=200
    Maximum number of epochs (passes over the training data).

shuffle : bool, default=True
    Shuffle the rows every epoch.

random_state : int, RandomState instance or None, default=None
    Seeds the initial weights (drawn exactly as sklearn draws them, so the same int gives
    sklearn's starting point), the early-stopping split, and fastmlp's shuffling and dropout.
    Differs from sklearn: the epochs' shuffles come from fastmlp's generator, so runs match
    sklearn's statistically, not bitwise.

tol : float, default=1e-4
    Training stops when the training loss (or, with early_stopping, the validation score)
    has not improved by at least ``tol`` for more than ``n_iter_no_change`` consecutive
    epochs (sklearn's rule, applied by a fastmlp callback after every epoch).

verbose : bool or int, default=False
    Print sklearn's per-epoch lines ("Iteration 3, loss = ...") to stdout.

warm_start : bool, default=False
    Reuse the fitted network as the starting point of the next fit (and keep loss_curve_,
    best_loss_, t_ and the no-improvement count, as sklearn). The optimizer starts afresh
    each fit, as in sklearn.

momentum : float, default=0.9
    SGD momentum in [0, 1). fastmlp uses PyTorch's form (v = m v + g; W -= lr v), which
    equals sklearn's (v = m v - lr g; W += v) while the rate is constant.

nesterovs_momentum : bool, default=True
    Nesterov momentum with solver='sgd' and momentum > 0.

early_stopping : bool, default=False
    Hold out ``validation_fraction`` of the rows (stratified for binary targets, as sklearn)
    and stop when the validation score ({score}) stops improving by ``tol``; the best epoch's
    weights are restored at the end. Not available in partial_fit.

validation_fraction : float, default=0.1
    Fraction of rows held out with early_stopping.

beta_1, beta_2 : float, default=0.9, 0.999
    Adam's moment decay rates.

epsilon : float, default=1e-8
    Adam's epsilon. Differs from sklearn: added to sqrt(v_hat) (PyTorch's placement), where
    sklearn adds it to sqrt(v); the two agree up to a factor sqrt(1 - beta_2 ** t) on epsilon.

n_iter_no_change : int or np.inf, default=10
    Epochs without ``tol`` improvement tolerated before stopping.

max_fun : int, default=15000
    Accepted for compatibility; only sklearn's lbfgs uses it.

optimizer : str or None, default=None
    fastmlp extension: any fastmlp optimizer, overriding ``solver``: 'sgd', 'momentum',
    'nesterov' (SGD with ``momentum``), 'adam', 'adamw' (``beta_1``, ``beta_2``, ``epsilon``,
    decoupled ``weight_decay``), 'rmsprop', 'adagrad' (fastmlp's defaults for rho and eps).

init : str, callable or None, default=None
    fastmlp extension. None: sklearn's initialisation (Glorot-uniform weights and biases,
    see random_state). A fastmlp initializer name ('he_normal', 'glorot_uniform',
    'lecun_normal', ...; a list gives one per layer) or a callable
    ``init(fan_in, fan_out, rng) -> array``: weights from it, biases 0.

batchnorm : bool or list of bool, default=False
    fastmlp extension: batch normalisation before each hidden activation (a list chooses per
    layer, output layer included). A batch-norm layer has no bias; coefs_ and intercepts_
    then hold the layer's inference-mode affine map (W and b folded from W, gamma, beta and
    the running statistics), as copies: edit ``model_`` to change such a layer.

dropout : float or list of float, default=0.0
    fastmlp extension: dropout rate after each hidden activation (training only).

clip_norm, clip_value : float or None, default=None
    fastmlp extension: gradient clipping by global norm / by value, applied to fastmlp's
    gradient (sklearn's divided by the loss scale described in the Notes).

weight_decay : float, default=0.0
    fastmlp extension: the optimizer's weight decay (decoupled with 'adamw', added to the
    gradient otherwise). ``alpha`` is sklearn's penalty; use that for sklearn's behaviour.
"""

ATTRIBUTES = """\
loss_ : float
    Training loss of the last epoch, on sklearn's scale (penalty included).

best_loss_ : float or None
    Lowest loss_ so far; None with early_stopping.

loss_curve_ : list of float
    loss_ after every epoch (continued across warm starts and partial_fit calls).

validation_scores_ : list of float or None
    Validation score ({score}) after every epoch with early_stopping, else None.

best_validation_score_ : float or None
    Best validation score with early_stopping, else None.

t_ : int
    Training rows seen (n_epochs x n_train_rows, accumulated over calls).

coefs_ : list of ndarray of shape (n_in, n_out)
    Weight matrix of each layer: float32 views into ``model_`` (in-place edits change the
    model, as in sklearn; the attribute itself cannot be reassigned).

intercepts_ : list of ndarray of shape (n_out,)
    Bias vector of each layer (views into ``model_``, as coefs_).

n_features_in_ : int
    Number of features seen during fit.

feature_names_in_ : ndarray of shape (n_features_in_,)
    Feature names seen during fit, when X has string column names (a pandas DataFrame).

n_iter_ : int
    Epochs run by the last fit / partial_fit call.

n_layers_ : int
    Number of layers, input and output included.

n_outputs_ : int
    Number of network outputs.

out_activation_ : str
    Name of the output activation ({out}).

model_ : fastmlp.MLP
    The fitted network (predict with ``model_.predict``, save with ``fastmlp.save``).

history_ : fastmlp.callbacks.History
    fastmlp's per-epoch logs of the last fit / partial_fit call (loss on fastmlp's scale,
    lr, grad_norm, time, ...).
"""

NOTES = """\
Training runs in fastmlp's C++ engine in float32 (sklearn computes in X's dtype, usually
float64); predictions are returned in X's float dtype.

Loss scale: fastmlp averages its losses over every output, sklearn sums over outputs
(squared error halved). The estimator reconciles the two so that sklearn's settings give
sklearn's steps: the SGD rate is multiplied and Adam's epsilon divided by the ratio of the
two gradients (1 for multi-class, n_outputs for binary/multi-label, n_outputs / 2 for
squared error), alpha is mapped onto fastmlp's l2 accordingly, and loss_ / loss_curve_ are
reported on sklearn's scale.

partial_fit: as in sklearn, the optimizer (momentum, Adam's moments and step count, the SGD
learning rate) carries over from one partial_fit call to the next; fit starts a new one.

X may be a scipy sparse matrix; it is densified (fastmlp's kernels are dense).
"""
