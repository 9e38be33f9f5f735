# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The Cython boundary between Python and the C kernels of src_c/.

What lives here:
  - the BLAS binding: scipy.linalg.cython_blas's sgemm/dgemm handed to C as function pointers
    (as scikit-learn does: no link step, callable without the GIL, scipy's OpenBLAS);
  - ``Network``: a model's flat buffers and workspace, and the C drivers that train it one
    epoch per call with the GIL released;
  - thin kernel wrappers (``dense_forward``, ``mse``, ``sgd_step`` ...) for ``fastbp.ops``.

This module is private. Its callers (fastbp.model, fastbp.ops) validate values (finite
numbers, label ranges, hyper-parameters); this module checks what memory safety needs
(dtype, C-contiguity, writability and shape of every array handed to C), once per call.
"""
import numpy as np

cimport numpy as cnp
from libc.stdint cimport int64_t
from scipy.linalg.cython_blas cimport dgemm, sgemm

cnp.import_array()

cdef fbp_blas BLAS
BLAS.sgemm = <fbp_sgemm_fn>sgemm
BLAS.dgemm = <fbp_dgemm_fn>dgemm

ACTIVATIONS = {
    "identity": FBP_IDENTITY,
    "relu": FBP_RELU,
    "leaky_relu": FBP_LEAKY_RELU,
    "sigmoid": FBP_SIGMOID,
    "tanh": FBP_TANH,
    "softmax": FBP_SOFTMAX,
}
LOSSES = {"mse": FBP_MSE, "binary_crossentropy": FBP_BCE, "categorical_crossentropy": FBP_CCE_PROBS}


def _check(a, str name, dtype, tuple shape, bint writable=False):
    """Raise ValueError unless `a` is a C-contiguous ndarray of `dtype` and `shape`."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
    if a.dtype != dtype:
        raise ValueError(f"{name} must have dtype {np.dtype(dtype)}, got {a.dtype}")
    if a.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {a.shape}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous")
    if writable and not a.flags.writeable:
        raise ValueError(f"{name} must be writable")


cdef inline void *_data(cnp.ndarray a) noexcept:
    return cnp.PyArray_DATA(a)


cdef class Network:
    """A Sequential network of dense layers as the C drivers see it.

    Owns the flat parameter and gradient buffers (layer by layer ``W_l`` of shape
    ``(sizes[l], sizes[l+1])`` then ``b_l``), the optimizer state buffers and the workspace
    for batches of up to ``max_batch`` rows. One call trains one epoch with the GIL released.
    A Network runs one call at a time: a second thread calling into a busy Network gets a
    RuntimeError instead of sharing its workspace.
    """
    cdef fbp_net net
    cdef fbp_optimizer opt
    cdef bint is_f64
    cdef bint busy
    cdef int base_loss
    cdef readonly object dtype
    cdef readonly tuple sizes
    cdef readonly int n_inputs, n_outputs
    cdef readonly cnp.ndarray params
    cdef readonly cnp.ndarray grads
    cdef readonly cnp.ndarray state1
    cdef readonly cnp.ndarray state2
    cdef cnp.ndarray _sizes, _activations, _slopes, _work, _batch_labels

    def __init__(self, sizes, activations, slopes, dtype, int max_batch=256):
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype}")
        if len(sizes) < 2 or len(activations) != len(sizes) - 1 or len(slopes) != len(activations):
            raise ValueError("sizes needs n_layers + 1 entries, activations and slopes n_layers")
        if min(sizes) < 1 or max(sizes) > 2**31 - 1:
            raise ValueError(f"layer sizes must be in [1, 2**31 - 1], got {list(sizes)}")
        self.is_f64 = self.dtype == np.float64
        self.sizes = tuple(int(s) for s in sizes)
        self.n_inputs, self.n_outputs = self.sizes[0], self.sizes[len(self.sizes) - 1]
        self._sizes = np.array(self.sizes, dtype=np.intc)
        self._activations = np.array([ACTIVATIONS[a] for a in activations], dtype=np.intc)
        self._slopes = np.array(slopes, dtype=np.float64)
        self.net.n_layers = len(self.sizes) - 1
        self.net.sizes = <const int *>_data(self._sizes)
        self.net.activations = <const int *>_data(self._activations)
        self.net.slopes = <const double *>_data(self._slopes)
        self.set_loss("mse")
        self.net.blas = BLAS
        cdef ptrdiff_t n_params = fbp_n_params(&self.net)
        self.params = np.zeros(n_params, dtype=self.dtype)
        self.grads = np.zeros(n_params, dtype=self.dtype)
        self.state1 = np.zeros(n_params, dtype=self.dtype)
        self.state2 = np.zeros(n_params, dtype=self.dtype)
        self.net.params = _data(self.params)
        self.net.grads = _data(self.grads)
        self.opt.state1 = _data(self.state1)
        self.opt.state2 = _data(self.state2)
        self.opt.step = 0
        self.set_optimizer("sgd", lr=0.01)
        self.net.max_batch = 0
        self.reserve(max_batch)

    @property
    def max_batch(self):
        return self.net.max_batch

    @property
    def step(self):
        """Optimizer steps taken so far (Adam's bias correction counts them)."""
        return self.opt.step

    @step.setter
    def step(self, value):
        if value < 0:
            raise ValueError(f"step must be >= 0, got {value}")
        self.opt.step = value

    def weight_offset(self, int layer):
        """Offset of W_layer in the flat buffer; b_layer follows it."""
        if not 0 <= layer <= self.net.n_layers:
            raise IndexError(f"layer must be in [0, {self.net.n_layers}], got {layer}")
        return fbp_weight_offset(&self.net, layer)

    def reserve(self, Py_ssize_t max_batch):
        """Make the workspace hold batches of up to max_batch rows (it only ever grows)."""
        if max_batch < 1 or max_batch > 2**31 - 1:
            raise ValueError(f"max_batch must be in [1, 2**31 - 1], got {max_batch}")
        if max_batch <= self.net.max_batch:
            return
        self._enter()
        try:
            self.net.max_batch = <int>max_batch
            self._work = np.zeros(fbp_workspace_len(&self.net), dtype=self.dtype)
            self._batch_labels = np.zeros(max_batch, dtype=np.int64)
            self.net.work = _data(self._work)
            self.net.batch_labels = <int64_t *>_data(self._batch_labels)
        finally:
            self.busy = False

    def set_optimizer(self, str kind, double lr, double momentum=0.0, bint nesterov=False,
                      double weight_decay=0.0, double beta1=0.9, double beta2=0.999,
                      double eps=1e-8, bint decoupled_weight_decay=False):
        """Set the optimizer's hyper-parameters (values validated by fastbp.optimizers)."""
        if kind not in ("sgd", "adam"):
            raise ValueError(f"kind must be 'sgd' or 'adam', got {kind!r}")
        self.opt.kind = FBP_SGD if kind == "sgd" else FBP_ADAM
        self.opt.lr = lr
        self.opt.momentum = momentum
        self.opt.nesterov = nesterov
        self.opt.weight_decay = weight_decay
        self.opt.beta1 = beta1
        self.opt.beta2 = beta2
        self.opt.eps = eps
        self.opt.decoupled_weight_decay = decoupled_weight_decay

    def set_loss(self, str loss):
        """The loss the output is trained on: 'mse', 'binary_crossentropy' or
        'categorical_crossentropy' (class indices or probability rows, chosen per call)."""
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {loss!r}")
        self.base_loss = LOSSES[loss]
        self.net.loss = self.base_loss

    def reset_optimizer_state(self):
        """Zero the momentum / moment buffers and the step counter."""
        self.state1.fill(0)
        self.state2.fill(0)
        self.opt.step = 0

    cdef void _enter(self) except *:
        if self.busy:
            raise RuntimeError(
                "this model is already training or predicting in another thread; "
                "use one model per thread")
        self.busy = True

    cdef int _targets(self, targets, Py_ssize_t n) except -1:
        """Check targets for n rows and set the loss variant they imply."""
        k = self.n_outputs
        if self.base_loss == FBP_CCE_PROBS and isinstance(targets, np.ndarray) and targets.ndim == 1:
            _check(targets, "labels", np.int64, (n,))
            self.net.loss = FBP_CCE_LABELS
        else:
            _check(targets, "targets", self.dtype, (n, k))
            self.net.loss = self.base_loss
        return 0

    def _check_inputs(self, X, n=None):
        rows = X.shape[0] if isinstance(X, np.ndarray) and X.ndim == 2 else -1
        _check(X, "X", self.dtype, (rows if n is None else n, self.n_inputs))
        return rows

    def train_epoch(self, X, targets, cnp.ndarray perm not None, int batch_size):
        """Train one epoch on the rows perm of (X, targets). Returns (mean loss, samples trained).

        perm must hold indices in [0, len(X)) (the caller builds it); the epoch stops before
        the step of the first batch whose loss or gradient is not finite."""
        cdef Py_ssize_t n_rows = self._check_inputs(X)
        _check(perm, "perm", np.int64, (perm.shape[0],))
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self._targets(targets, n_rows)
        self.reserve(batch_size)
        cdef ptrdiff_t n = perm.shape[0], n_trained = 0
        cdef double loss
        cdef void *x = _data(X)
        cdef void *t = _data(targets)
        cdef const int64_t *idx = <const int64_t *>_data(perm)
        cdef const int64_t *labels = <const int64_t *>t if self.net.loss == FBP_CCE_LABELS else NULL
        self._enter()
        try:
            with nogil:
                if self.is_f64:
                    loss = fbp_train_epoch_f64(&self.net, &self.opt, <const double *>x,
                                               <const double *>t, labels, idx, n, batch_size,
                                               &n_trained)
                else:
                    loss = fbp_train_epoch_f32(&self.net, &self.opt, <const float *>x,
                                               <const float *>t, labels, idx, n, batch_size,
                                               &n_trained)
        finally:
            self.busy = False
        return loss, n_trained

    def evaluate(self, X, targets, out=None):
        """Mean loss over (X, targets); the network's output goes into out when given."""
        cdef Py_ssize_t n = self._check_inputs(X)
        self._targets(targets, n)
        if out is not None:
            _check(out, "out", self.dtype, (n, self.n_outputs), writable=True)
        cdef void *x = _data(X)
        cdef void *t = _data(targets)
        cdef void *o = _data(out) if out is not None else NULL
        cdef const int64_t *labels = <const int64_t *>t if self.net.loss == FBP_CCE_LABELS else NULL
        cdef double loss
        self._enter()
        try:
            with nogil:
                if self.is_f64:
                    loss = fbp_evaluate_f64(&self.net, <const double *>x, <const double *>t,
                                            labels, n, <double *>o)
                else:
                    loss = fbp_evaluate_f32(&self.net, <const float *>x, <const float *>t,
                                            labels, n, <float *>o)
        finally:
            self.busy = False
        return loss

    def predict(self, X, out):
        """out = the network's output for X, the last layer's activation applied."""
        cdef Py_ssize_t n = self._check_inputs(X)
        _check(out, "out", self.dtype, (n, self.n_outputs), writable=True)
        cdef void *x = _data(X)
        cdef void *o = _data(out)
        self._enter()
        try:
            with nogil:
                if self.is_f64:
                    fbp_predict_f64(&self.net, <const double *>x, n, <double *>o)
                else:
                    fbp_predict_f32(&self.net, <const float *>x, n, <float *>o)
        finally:
            self.busy = False
        return out

    def loss_and_grad(self, X, targets):
        """Loss of one batch and the gradient of every parameter, into self.grads (no step)."""
        cdef Py_ssize_t n = self._check_inputs(X)
        if n < 1:
            raise ValueError("X must have at least one row")
        self._targets(targets, n)
        self.reserve(n)
        cdef void *x = _data(X)
        cdef void *t = _data(targets)
        cdef const int64_t *labels = <const int64_t *>t if self.net.loss == FBP_CCE_LABELS else NULL
        cdef double loss
        self._enter()
        try:
            with nogil:
                if self.is_f64:
                    loss = fbp_loss_and_grad_f64(&self.net, <const double *>x, <const double *>t,
                                                 labels, <int>n)
                else:
                    loss = fbp_loss_and_grad_f32(&self.net, <const float *>x, <const float *>t,
                                                 labels, <int>n)
        finally:
            self.busy = False
        return loss

    def optimizer_step(self):
        """One optimizer step with the gradients in self.grads."""
        cdef ptrdiff_t n = self.params.shape[0]
        self._enter()
        try:
            with nogil:
                if self.is_f64:
                    fbp_optimizer_step_f64(&self.opt, n, <double *>self.net.params,
                                           <const double *>self.net.grads)
                else:
                    fbp_optimizer_step_f32(&self.opt, n, <float *>self.net.params,
                                           <const float *>self.net.grads)
        finally:
            self.busy = False
