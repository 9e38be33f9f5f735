"""fastbp's C kernels as functions on your own numpy arrays.

Keep a hand-written numpy training loop and replace its pieces one at a time::

    Z1 = X @ W1 + b1; A1 = np.maximum(Z1, 0)      ->  A1 = ops.dense_forward(X, W1, b1, "relu")
    loss, dZ2 = <softmax + cross-entropy by hand>  ->  loss, dZ2 = ops.softmax_cross_entropy(Z2, y)
    dW2 = A1.T @ dZ2; db2 = dZ2.sum(0); ...        ->  dA1, dW2, db2 = ops.dense_backward(A1, W2, dZ2)
    dZ1 = dA1 * (A1 > 0)                           ->  dZ1 = ops.activation_backward(A1, dA1, "relu")
    v = 0.9 * v + dW; W -= lr * v                  ->  ops.sgd_step(W, dW, lr, momentum=0.9, velocity=v)

These are the kernels :class:`fastbp.Sequential` trains with (src_c/), so the numbers match the
model's and PyTorch's (``torch.nn.functional`` and ``torch.optim``, mean reduction).

Conventions, true for every function here
-----------------------------------------
dtype
    Every call computes in one dtype, float32 or float64, taken from one array named in its
    docstring (the parameters ``W`` or ``param``, else the first array). That array is never
    converted: any other dtype is a ``TypeError``, so results always have the precision you
    chose. Other floating inputs must have the same dtype (``TypeError`` otherwise: mixing
    precisions is left to you, once, not done silently on every call). Integer and boolean
    inputs (and Python lists and scalars) are converted to the call's dtype; class indices
    to int64.
Inputs
    are never written. Non-contiguous, Fortran-order, byte-swapped or misaligned inputs are
    copied to a C-contiguous array first; read-only inputs are fine.
Outputs (``out=``, ``dX``/``dW``/``db``, and the arrays the optimizer steps update in place)
    must be numpy arrays of exactly the call's dtype (``TypeError``), of the documented shape,
    C-contiguous and writable (``ValueError`` saying which). When ``out`` is None a new array
    is returned. With ``out`` given the function writes into it and returns it, so a loop can
    run without allocating.
Aliasing
    each docstring says which arguments may be the same array (or share memory). Any other
    sharing, detected exactly with the arrays' memory ranges (as ``np.shares_memory``), is a
    ``ValueError``.
Validation first
    Every check runs before anything is written: after an exception the caller's arrays are
    unchanged. Scalars (``lr``, ``momentum``, ...) must be finite real numbers in the documented
    range; class labels in ``[0, n_classes)``. Array values are not checked for NaN or infinity
    (they propagate, as in numpy).
Zero-size arrays
    work: empty results, zero gradients for sums over nothing, and NaN for the mean of nothing
    (as numpy's and torch's mean).
Threads
    the kernels run with the GIL released.

Raises ``TypeError`` for wrong types and dtypes, ``ValueError`` for wrong values, shapes,
layouts and overlaps.
"""
import numpy as np

from . import _core
from ._validation import check_float, check_int

__all__ = [
    "ACTIVATIONS",
    "activation_backward",
    "activation_forward",
    "adam_step",
    "binary_crossentropy",
    "dense_backward",
    "dense_forward",
    "leaky_relu",
    "mse",
    "relu",
    "sgd_step",
    "sigmoid",
    "softmax",
    "softmax_cross_entropy",
    "tanh",
]

#: Activation names accepted by ``activation=`` / ``name`` (``None`` means ``"identity"``).
ACTIVATIONS = tuple(_core.ACTIVATIONS)
_SOFTMAX = _core.ACTIVATIONS["softmax"]
_LEAKY_RELU = _core.ACTIVATIONS["leaky_relu"]
_FLOAT32, _FLOAT64 = np.dtype(np.float32), np.dtype(np.float64)
_INF = float("inf")


# ---- conversions at the boundary -------------------------------------------------------------
def _as_primary(a, name):
    """`a` as the array that fixes the call's dtype: float32 or float64, never converted to
    another precision; copied only when not C-contiguous, aligned and native-endian."""
    arr = a if type(a) is np.ndarray else np.asarray(a)
    dtype = arr.dtype
    if dtype is _FLOAT64 or dtype is _FLOAT32:  # the fast path: numpy's canonical instances
        flags = arr.flags
        if flags.c_contiguous and flags.aligned:
            return arr
    if dtype.kind != "f" or dtype.itemsize not in (4, 8):
        raise TypeError(
            f"{name} must have dtype float32 or float64, got {dtype}: it sets the precision "
            f"of the result, which fastbp.ops does not choose for you (convert it once, e.g. "
            f"{name}.astype(np.float32))")
    return np.require(arr, dtype.newbyteorder("="), ["C", "A"])


def _as_input(a, name, dtype, dtype_from):
    """`a` as a C-contiguous array of `dtype`. Floating arrays must already have that
    precision; integer/boolean arrays, lists and scalars are converted."""
    if type(a) is np.ndarray:
        arr = a
        if arr.dtype is dtype:
            flags = arr.flags
            if flags.c_contiguous and flags.aligned:
                return arr
    elif isinstance(a, (np.ndarray, np.generic)):
        arr = np.asarray(a)
    else:  # a list or a Python scalar: no precision of its own
        arr = np.asarray(a)
        if arr.dtype.kind == "f":
            return np.require(arr, dtype, ["C", "A"])
    kind = arr.dtype.kind
    if kind == "f" and arr.dtype.itemsize != dtype.itemsize:
        raise TypeError(
            f"{name} has dtype {arr.dtype} but {dtype_from} has dtype {dtype}: fastbp.ops does "
            f"not mix precisions; convert {name} once, e.g. {name}.astype(np.{dtype})")
    if kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    return np.require(arr, dtype, ["C", "A"])


def _as_labels(target, name="target"):
    """Class indices as C-contiguous int64 (the range is checked by the kernel wrapper)."""
    arr = np.asarray(target)
    if arr.dtype.kind not in "iu":
        raise TypeError(
            f"{name} of shape (n,) must hold integer class indices, got dtype {arr.dtype} "
            f"(for one-hot or probability rows pass shape (n, n_classes))")
    if arr.dtype == np.uint64 and arr.size and arr.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{name} holds class labels out of range: got {arr.max()}")
    return np.require(arr, np.int64, ["C", "A"])


def _activation_code(name):
    if name is None:
        return 0
    try:
        return _core.ACTIVATIONS[name]
    except (KeyError, TypeError):
        raise ValueError(f"activation must be one of {list(ACTIVATIONS)} or None, "
                         f"got {name!r}") from None


def _slope(code, negative_slope):
    """leaky_relu's slope must be > 0: its derivative is computed from the output, whose
    sign must be that of the input."""
    if code == _LEAKY_RELU:
        if type(negative_slope) is float and 0.0 < negative_slope < _INF:
            return negative_slope
        return check_float(negative_slope, "negative_slope", 0, low_open=True)
    return 0.0


def _real(value, name, low=0.0, high=None):
    """A finite float in [low, high) (or [low, inf) when high is None). Plain Python numbers
    take a fast path (ints only within the float range: 10**400 cannot become a float);
    anything else goes through the full check with its messages."""
    if type(value) is float or (type(value) is int and -2**53 <= value <= 2**53):
        if low <= value < (high if high is not None else _INF):  # False for NaN
            return float(value)
    if high is None:
        return check_float(value, name, low)
    return check_float(value, name, low, high, high_open=True)


def _check_bool(value, name):
    if value is True or value is False:
        return value
    if not isinstance(value, np.bool_):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return bool(value)


# ---- dense layers ----------------------------------------------------------------------------
def dense_forward(X, W, b, activation=None, out=None, *, negative_slope=0.01):
    r"""A dense layer's forward pass, ``out = activation(X @ W + b)``.

    One BLAS gemm, then the bias and the activation in the same pass over the output.

    Parameters
    ----------
    X : array_like, shape (n_samples, in_features)
        Inputs, in the dtype of ``W`` (integer inputs are converted).
    W : ndarray of float32 or float64, shape (in_features, out_features)
        Weights; their dtype is the dtype of the call.
    b : array_like, shape (out_features,) or (1, out_features)
    activation : str or None
        One of :data:`ACTIVATIONS` (``None`` is ``"identity"``: the pre-activation ``Z``).
        ``"softmax"`` is taken over each row.
    out : ndarray, shape (n_samples, out_features), optional
        Where to write the result.
    negative_slope : float > 0
        ``leaky_relu``'s slope for negative inputs (PyTorch's default 0.01).

    Returns
    -------
    out : ndarray, shape (n_samples, out_features)

    Notes
    -----
    Aliasing: ``out`` must not share memory with ``X``, ``W`` or ``b``.
    Keep ``out`` (the activation output ``A``): :func:`activation_backward` computes the
    derivative from it, so the pre-activation need not be stored.

    Examples
    --------
    >>> import numpy as np
    >>> from fastbp import ops
    >>> X = np.array([[1.0, 2.0]]); W = np.array([[1.0, -1.0], [1.0, -1.0]]); b = np.zeros(2)
    >>> ops.dense_forward(X, W, b, "relu")
    array([[3., 0.]])
    """
    W = _as_primary(W, "W")
    dtype = W.dtype
    X = _as_input(X, "X", dtype, "W")
    b = _as_input(b, "b", dtype, "W")
    code = _activation_code(activation)
    slope = _slope(code, negative_slope)
    if out is None:
        if X.ndim != 2 or W.ndim != 2:  # let the wrapper say which shape is wrong
            out = np.empty((0, 0), dtype)
        else:
            out = np.empty((X.shape[0], W.shape[1]), dtype)
    return _core.dense_forward(X, W, b, code, slope, out)


def dense_backward(X, W, dZ, dX=None, dW=None, db=None, *, need_dX=True):
    r"""A dense layer's backward pass: the gradients of ``Z = X @ W + b`` given ``dZ``.

    ::

        dW = X.T @ dZ            (in_features, out_features)
        db = dZ.sum(axis=0)      (out_features,)
        dX = dZ @ W.T            (n_samples, in_features)

    ``dZ`` is the gradient with respect to the layer's **pre-activation** ``Z``. To go back
    through an activation, first turn the gradient with respect to its output ``A`` into
    ``dZ`` with :func:`activation_backward` (which computes the derivative from ``A``).
    The losses of this module return the gradient with respect to their input (for the
    cross-entropies: the logits ``Z``), which is ``dZ`` of the last layer directly.

    Parameters
    ----------
    X : array_like, shape (n_samples, in_features)
        The layer's input in the forward pass.
    W : ndarray of float32 or float64, shape (in_features, out_features)
        Weights; their dtype is the dtype of the call.
    dZ : array_like, shape (n_samples, out_features)
    dX : ndarray, shape (n_samples, in_features), optional
        Where to write the input gradient; allocated when None and ``need_dX``.
    dW : ndarray, shape (in_features, out_features), optional
    db : ndarray, shape (out_features,) or (1, out_features), optional
        Where to write the parameter gradients (overwritten, not accumulated); allocated when
        None (``db`` with shape ``(out_features,)``).
    need_dX : bool, keyword-only
        False skips the product ``dX`` (the first layer needs no input gradient); ``dX`` is
        then returned as None and must not be given.

    Returns
    -------
    dX, dW, db : ndarray (dX is None when ``need_dX`` is False)

    Notes
    -----
    Aliasing: the outputs ``dX``, ``dW``, ``db`` must not share memory with ``X``, ``W``,
    ``dZ`` or each other. With ``n_samples == 0`` the gradients are zeros.

    Examples
    --------
    >>> import numpy as np
    >>> from fastbp import ops
    >>> X = np.array([[1.0, 2.0]]); W = np.array([[1.0], [3.0]]); dZ = np.array([[0.5]])
    >>> dX, dW, db = ops.dense_backward(X, W, dZ)
    >>> dX, dW.ravel(), db
    (array([[0.5, 1.5]]), array([0.5, 1. ]), array([0.5]))
    """
    W = _as_primary(W, "W")
    dtype = W.dtype
    X = _as_input(X, "X", dtype, "W")
    dZ = _as_input(dZ, "dZ", dtype, "W")
    need_dX = _check_bool(need_dX, "need_dX")
    shapes_ok = X.ndim == 2 and W.ndim == 2
    if dW is None:
        dW = np.empty(W.shape if W.ndim == 2 else (0, 0), dtype)
    if db is None:
        db = np.empty(W.shape[1] if W.ndim == 2 else 0, dtype)
    if not need_dX:
        if dX is not None:
            raise ValueError("dX was given but need_dX is False")
    elif dX is None:
        dX = np.empty((X.shape[0], W.shape[0]) if shapes_ok else (0, 0), dtype)
    return _core.dense_backward(X, W, dZ, dX, dW, db)


# ---- activations -----------------------------------------------------------------------------
def activation_forward(Z, name, out=None, negative_slope=0.01):
    r"""An activation by name, ``out = act(Z)``, element-wise (softmax: over the last axis).

    =============  ======================================================
    ``identity``   ``z``  (also ``name=None``)
    ``relu``       ``max(z, 0)``
    ``leaky_relu`` ``z if z > 0 else negative_slope * z``
    ``sigmoid``    ``1 / (1 + exp(-z))``
    ``tanh``       ``tanh(z)``
    ``softmax``    ``exp(z_j - max_k z_k) / sum_k exp(z_k - max_k z_k)`` along the last axis
    =============  ======================================================

    Parameters
    ----------
    Z : ndarray of float32 or float64, any shape (softmax: at least 1-d)
        Its dtype is the dtype of the call.
    name : str or None
        One of :data:`ACTIVATIONS`.
    out : ndarray, shape of Z, optional
    negative_slope : float > 0
        ``leaky_relu``'s slope (PyTorch's default 0.01). Must be positive so that
        :func:`activation_backward` can tell the sign of ``z`` from the output.

    Returns
    -------
    out : ndarray, shape of Z

    Notes
    -----
    Aliasing: ``out`` may be ``Z`` (in place) or share memory with it in any way.

    Examples
    --------
    >>> import numpy as np
    >>> from fastbp import ops
    >>> ops.activation_forward(np.array([-1.0, 0.0, 2.0]), "relu")
    array([0., 0., 2.])
    >>> ops.activation_forward(np.zeros((1, 4)), "softmax")
    array([[0.25, 0.25, 0.25, 0.25]])
    """
    Z = _as_primary(Z, "Z")
    code = _activation_code(name)
    slope = _slope(code, negative_slope)
    if code == _SOFTMAX and Z.ndim == 0:
        raise ValueError("softmax needs an array of at least 1 dimension, got a 0-d array")
    if out is None:
        out = np.empty_like(Z)
    return _core.activation_forward(Z, out, code, slope)


def activation_backward(A, dA, name, out=None, negative_slope=0.01):
    r"""The gradient through an activation, ``out = dA * act'(z)``, with the derivative
    computed from the activation's **output** ``A = act(Z)``.

    =============  ======================================================
    ``identity``   ``dA``
    ``relu``       ``dA * (A > 0)``
    ``leaky_relu`` ``dA if A > 0 else negative_slope * dA``
    ``sigmoid``    ``dA * A * (1 - A)``
    ``tanh``       ``dA * (1 - A**2)``
    ``softmax``    ``A * (dA - sum(dA * A, axis=-1, keepdims=True))``  (Jacobian-vector
                   product over the last axis)
    =============  ======================================================

    The result is ``dZ``, what :func:`dense_backward` takes.

    Parameters
    ----------
    A : ndarray of float32 or float64
        The activation's output in the forward pass; its dtype is the dtype of the call.
    dA : array_like, shape of A
        Gradient of the loss with respect to ``A``.
    name : str or None
        One of :data:`ACTIVATIONS`.
    out : ndarray, shape of A, optional
    negative_slope : float > 0
        As in :func:`activation_forward`.

    Returns
    -------
    out : ndarray, shape of A

    Notes
    -----
    Aliasing: ``out`` may be ``dA`` (in place) or share memory with it; it must not share
    memory with ``A``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastbp import ops
    >>> A = ops.relu(np.array([-1.0, 2.0]))
    >>> ops.activation_backward(A, np.array([5.0, 5.0]), "relu")
    array([0., 5.])
    """
    A = _as_primary(A, "A")
    dA = _as_input(dA, "dA", A.dtype, "A")
    code = _activation_code(name)
    slope = _slope(code, negative_slope)
    if code == _SOFTMAX and A.ndim == 0:
        raise ValueError("softmax needs an array of at least 1 dimension, got a 0-d array")
    if out is None:
        out = np.empty_like(A)
    return _core.activation_backward(A, dA, out, code, slope)


def relu(Z, out=None):
    """``max(Z, 0)``; :func:`activation_forward` with ``"relu"`` (same dtype, ``out`` and
    aliasing rules: ``out`` may be ``Z``).

    >>> import numpy as np
    >>> from fastbp import ops
    >>> ops.relu(np.array([-1.0, 3.0]))
    array([0., 3.])
    """
    return activation_forward(Z, "relu", out)


def leaky_relu(Z, negative_slope=0.01, out=None):
    """``Z if Z > 0 else negative_slope * Z``; :func:`activation_forward` with
    ``"leaky_relu"`` (``out`` may be ``Z``).

    >>> import numpy as np
    >>> from fastbp import ops
    >>> ops.leaky_relu(np.array([-1.0, 3.0]), 0.1)
    array([-0.1,  3. ])
    """
    return activation_forward(Z, "leaky_relu", out, negative_slope)


def sigmoid(Z, out=None):
    """``1 / (1 + exp(-Z))`` (0, never NaN, for very negative Z); :func:`activation_forward`
    with ``"sigmoid"`` (``out`` may be ``Z``).

    >>> import numpy as np
    >>> from fastbp import ops
    >>> ops.sigmoid(np.array([0.0]))
    array([0.5])
    """
    return activation_forward(Z, "sigmoid", out)


def tanh(Z, out=None):
    """``tanh(Z)``; :func:`activation_forward` with ``"tanh"`` (``out`` may be ``Z``).

    >>> import numpy as np
    >>> from fastbp import ops
    >>> ops.tanh(np.array([0.0]))
    array([0.])
    """
    return activation_forward(Z, "tanh", out)


def softmax(Z, out=None):
    """Softmax over the last axis, with the row maximum subtracted (never overflows);
    :func:`activation_forward` with ``"softmax"`` (``out`` may be ``Z``).

    >>> import numpy as np
    >>> from fastbp import ops
    >>> ops.softmax(np.array([[0.0, 0.0], [1000.0, 1000.0]]))
    array([[0.5, 0.5],
           [0.5, 0.5]])
    """
    return activation_forward(Z, "softmax", out)


# ---- losses ----------------------------------------------------------------------------------
def mse(pred, target, out=None):
    r"""Mean squared error and its gradient, as ``torch.nn.functional.mse_loss`` (mean over
    all elements).

    ::

        loss = mean((pred - target)**2)
        grad = 2 * (pred - target) / pred.size

    ``pred`` is the network's output after its activation; to go further back, pass ``grad``
    to :func:`activation_backward` as ``dA``.

    Parameters
    ----------
    pred : ndarray of float32 or float64, any shape
        Its dtype is the dtype of the call.
    target : array_like, shape of pred
    out : ndarray, shape of pred, optional
        Where to write ``grad``.

    Returns
    -------
    loss : float
        NaN for empty arrays (the mean of nothing).
    grad : ndarray, shape of pred

    Notes
    -----
    Aliasing: ``out`` may be ``pred`` itself (the gradient overwrites the prediction) but may
    not otherwise share memory with it; it must not share memory with ``target``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastbp import ops
    >>> ops.mse(np.array([1.0, 3.0]), np.array([1.0, 1.0]))
    (2.0, array([0., 2.]))
    """
    pred = _as_primary(pred, "pred")
    target = _as_input(target, "target", pred.dtype, "pred")
    if out is None:
        out = np.empty_like(pred)
    return _core.mse(pred, target, out)


def binary_crossentropy(logits, target, out=None):
    r"""Binary cross-entropy of ``sigmoid(logits)`` against ``target``, computed from the
    logits, and its gradient, as ``torch.nn.functional.binary_cross_entropy_with_logits``
    (mean over all elements).

    ::

        loss = mean(max(z, 0) - z * y + log1p(exp(-|z|)))
        grad = (sigmoid(z) - y) / z.size

    Stable for any logit: never ``log(0)``.

    Parameters
    ----------
    logits : ndarray of float32 or float64, any shape
        The pre-activation ``z`` of a sigmoid output; its dtype is the dtype of the call.
    target : array_like, shape of logits
        Usually values in [0, 1] (booleans and integers are converted).
    out : ndarray, shape of logits, optional
        Where to write ``grad``.

    Returns
    -------
    loss : float
        NaN for empty arrays.
    grad : ndarray, shape of logits
        The gradient with respect to the logits: ``dZ`` of the last layer.

    Notes
    -----
    Aliasing: ``out`` may be ``logits`` itself but may not otherwise share memory with it; it
    must not share memory with ``target``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastbp import ops
    >>> loss, grad = ops.binary_crossentropy(np.array([0.0, 0.0]), np.array([1.0, 0.0]))
    >>> round(loss, 6), grad
    (0.693147, array([-0.25,  0.25]))
    """
    logits = _as_primary(logits, "logits")
    target = _as_input(target, "target", logits.dtype, "logits")
    if out is None:
        out = np.empty_like(logits)
    return _core.bce_logits(logits, target, out)


def softmax_cross_entropy(logits, target, out=None):
    r"""Softmax + categorical cross-entropy from logits, and its gradient, as
    ``torch.nn.functional.cross_entropy`` (mean over samples).

    With ``p = softmax(z)`` per row (log-sum-exp with the row maximum subtracted)::

        class indices y (n,):         loss = mean_i(logsumexp(z_i) - z_i[y_i])
                                      grad = (p - onehot(y)) / n
        rows Y (n, n_classes):        loss = mean_i(sum_j Y_ij (logsumexp(z_i) - z_ij))
                                      grad = (p * Y.sum(axis=1, keepdims=True) - Y) / n
                                           = (p - Y) / n  for rows summing to 1

    Parameters
    ----------
    logits : ndarray of float32 or float64, shape (n_samples, n_classes)
        Its dtype is the dtype of the call; ``n_classes >= 1``.
    target : array_like of int, shape (n_samples,), or array_like, shape (n_samples, n_classes)
        Class indices in ``[0, n_classes)`` (any integer dtype), or one-hot / probability rows.
    out : ndarray, shape (n_samples, n_classes), optional
        Where to write ``grad``.

    Returns
    -------
    loss : float
        NaN when ``n_samples == 0``.
    grad : ndarray, shape (n_samples, n_classes)
        The gradient with respect to the logits: ``dZ`` of the last layer.

    Notes
    -----
    Aliasing: ``out`` may be ``logits`` itself but may not otherwise share memory with it; it
    must not share memory with ``target``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastbp import ops
    >>> loss, grad = ops.softmax_cross_entropy(np.zeros((2, 2)), np.array([0, 1]))
    >>> round(loss, 6), grad
    (0.693147, array([[-0.25,  0.25],
           [ 0.25, -0.25]]))
    """
    logits = _as_primary(logits, "logits")
    if logits.ndim != 2:
        raise ValueError(f"logits must be 2-d (n_samples, n_classes), got shape {logits.shape}")
    if out is None:
        out = np.empty_like(logits)
    if np.ndim(target) == 1:
        return _core.softmax_xent_labels(logits, _as_labels(target), out)
    target = _as_input(target, "target", logits.dtype, "logits")
    if target.ndim != 2:
        raise ValueError(f"target must be class indices of shape ({logits.shape[0]},) or rows "
                         f"of shape {logits.shape}, got shape {target.shape}")
    return _core.softmax_xent_probs(logits, target, out)


# ---- optimizer steps -------------------------------------------------------------------------
def sgd_step(param, grad, lr, momentum=0.0, velocity=None, nesterov=False, weight_decay=0.0):
    r"""One step of ``torch.optim.SGD`` (dampening 0), in place on ``param`` and ``velocity``.

    ::

        g = grad + weight_decay * param
        if momentum:
            velocity = momentum * velocity + g
            g = g + momentum * velocity if nesterov else velocity
        param -= lr * g

    Parameters
    ----------
    param : ndarray of float32 or float64, any shape
        Updated in place; its dtype is the dtype of the call.
    grad : array_like, shape of param
    lr : float >= 0
    momentum : float >= 0
    velocity : ndarray, shape of param, optional
        The momentum buffer, updated in place; needed when ``momentum > 0``, not used (and
        not touched) otherwise. Start it at zeros: the first step then sets it to ``g``, as
        torch does.
    nesterov : bool
        Needs ``momentum > 0``.
    weight_decay : float >= 0
        L2 penalty added to the gradient.

    Returns
    -------
    param : ndarray (the same array)

    Notes
    -----
    Aliasing: ``param``, ``grad`` and ``velocity`` must not share memory. Keep one velocity
    per parameter array, or keep all parameters in one flat buffer (views of it for each
    layer) and make a single call per step.

    Examples
    --------
    >>> import numpy as np
    >>> from fastbp import ops
    >>> W = np.ones(3); v = np.zeros(3)
    >>> ops.sgd_step(W, np.full(3, 0.5), lr=0.1, momentum=0.9, velocity=v)
    array([0.95, 0.95, 0.95])
    >>> v
    array([0.5, 0.5, 0.5])
    """
    param = _as_param(param)
    grad = _as_input(grad, "grad", param.dtype, "param")
    lr = _real(lr, "lr")
    momentum = _real(momentum, "momentum")
    nesterov = _check_bool(nesterov, "nesterov")
    weight_decay = _real(weight_decay, "weight_decay")
    if nesterov and momentum == 0:
        raise ValueError("nesterov=True needs momentum > 0")
    return _core.sgd_step(param, grad, velocity, lr, momentum, nesterov, weight_decay)


def adam_step(param, grad, m, v, step, lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
              weight_decay=0.0, decoupled=False):
    r"""One step of ``torch.optim.Adam`` (or ``torch.optim.AdamW`` with ``decoupled=True``),
    in place on ``param``, ``m`` and ``v``.

    For step number ``t = step`` (1 on the first call)::

        Adam:   g = grad + weight_decay * param          AdamW:  param *= 1 - lr * weight_decay
                                                                 g = grad
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g**2
        param -= lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

    Parameters
    ----------
    param : ndarray of float32 or float64, any shape
        Updated in place; its dtype is the dtype of the call.
    grad : array_like, shape of param
    m, v : ndarray, shape of param
        First and second moment buffers, updated in place; start them at zeros.
    step : int >= 1
        The number of this step (bias correction); count it yourself, 1, 2, 3, ...
    lr : float >= 0
    betas : (float, float), each in [0, 1)
    eps : float >= 0
    weight_decay : float >= 0
        Adam: L2 penalty added to the gradient; AdamW: decoupled decay (torch's AdamW
        defaults it to 0.01; here the default is 0 for both).
    decoupled : bool
        True for AdamW.

    Returns
    -------
    param : ndarray (the same array)

    Notes
    -----
    Aliasing: ``param``, ``grad``, ``m`` and ``v`` must not share memory.

    Examples
    --------
    >>> import numpy as np
    >>> from fastbp import ops
    >>> W = np.ones(2); m = np.zeros(2); v = np.zeros(2)
    >>> ops.adam_step(W, np.array([1.0, -1.0]), m, v, step=1, lr=0.1)
    array([0.9, 1.1])
    """
    param = _as_param(param)
    grad = _as_input(grad, "grad", param.dtype, "param")
    if type(step) is not int or step < 1:
        step = check_int(step, "step", 1)
    if step >= 2**63:
        raise ValueError(f"step must be < 2**63, got {step}")
    lr = _real(lr, "lr")
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise TypeError(f"betas must be a pair of floats, got {betas!r}")
    beta1 = _real(betas[0], "betas[0]", 0.0, 1.0)
    beta2 = _real(betas[1], "betas[1]", 0.0, 1.0)
    eps = _real(eps, "eps")
    weight_decay = _real(weight_decay, "weight_decay")
    decoupled = _check_bool(decoupled, "decoupled")
    return _core.adam_step(param, grad, m, v, step, lr, beta1, beta2, eps, weight_decay,
                           decoupled)


def _as_param(param):
    """The array an optimizer updates: never copied (the update must reach the caller)."""
    if not isinstance(param, np.ndarray):
        raise TypeError(f"param must be a numpy.ndarray (it is updated in place), "
                        f"got {type(param).__name__}")
    dtype = param.dtype
    if dtype is not _FLOAT64 and dtype is not _FLOAT32 and dtype not in (_FLOAT32, _FLOAT64):
        raise TypeError(f"param must have dtype float32 or float64, got {param.dtype}")
    return param

