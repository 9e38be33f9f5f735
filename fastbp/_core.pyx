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
import contextlib

import numpy as np

cimport numpy as cnp
from cpython.pycapsule cimport PyCapsule_GetPointer
from libc.stdint cimport int64_t, uint64_t
from numpy.random cimport bitgen_t
from numpy.random.c_distributions cimport random_interval
from scipy.linalg.cython_blas cimport dgemm, sgemm

cnp.import_array()

# Short C calls keep the GIL. Releasing it costs nothing alone, but when another thread waits
# for it (models trained in parallel Python threads) each release hands it over, and taking it
# back waits for that thread's next release plus a thread wake-up (30-50 us on this kind of
# machine): an extra release of 5 us per epoch cut the speed-up of two tiny models in two
# threads from 1.85x to 1.30x. So a call releases the GIL only when its work is long against
# that: the range scans from SCAN_NOGIL_MIN elements (about 80 us), shuffles from
# SHUFFLE_NOGIL_MIN (about 130 us); the epoch drivers always.
SCAN_NOGIL_MIN = 1 << 21
SHUFFLE_NOGIL_MIN = 1 << 14


# ---- GIL-release check, in debug builds only ----
# Built with FASTBP_DEBUG_GIL=1 (setup.py then defines the C macro FASTBP_DEBUG_GIL), the first
# statement of every `with nogil:` block below, _gil_check(site), counts that the block ran and,
# when PyGILState_Check() says this thread still holds the GIL, counts that too, per site.
# tests/test_gil.py runs every entry point and asserts the second count stays 0. In a normal
# build _gil_check is an empty inline function and _gil_counts() returns {}.
cdef extern from *:
    """
    #ifdef FASTBP_DEBUG_GIL
    #define FBP_DEBUG_GIL_BUILD 1
    #define FBP_GIL_SITES 32
    static long fbp_gil_checked[FBP_GIL_SITES];
    static long fbp_gil_held[FBP_GIL_SITES];
    static void fbp_gil_check(int site)
    {
        __atomic_fetch_add(&fbp_gil_checked[site], 1, __ATOMIC_RELAXED);
        if (PyGILState_Check()) __atomic_fetch_add(&fbp_gil_held[site], 1, __ATOMIC_RELAXED);
    }
    static long fbp_gil_count(int site, int held)
    {
        return __atomic_load_n(held ? &fbp_gil_held[site] : &fbp_gil_checked[site],
                               __ATOMIC_RELAXED);
    }
    #else
    #define FBP_DEBUG_GIL_BUILD 0
    static inline void fbp_gil_check(int site) { (void)site; }
    static long fbp_gil_count(int site, int held) { (void)site; (void)held; return 0; }
    #endif
    """
    int FBP_DEBUG_GIL_BUILD
    void _gil_check "fbp_gil_check"(int site) noexcept nogil
    long fbp_gil_count(int site, int held) noexcept nogil

# The sites, one per `with nogil:` block (at most 32, the C arrays' length).
cdef enum:
    GIL_TRAIN_EPOCH
    GIL_EVALUATE
    GIL_PREDICT
    GIL_LOSS_AND_GRAD
    GIL_OPTIMIZER_STEP
    GIL_ACTIVATION_FORWARD
    GIL_ACTIVATION_BACKWARD
    GIL_LOSSES
    GIL_DENSE_FORWARD
    GIL_DENSE_BACKWARD
    GIL_SGD_STEP
    GIL_ADAM_STEP
    GIL_ALL_IN_RANGE
    GIL_TRAIN_EPOCHS
    GIL_SHUFFLE
    GIL_LABELS_IN_RANGE
    GIL_SELFTEST

_GIL_SITES = ("Network.train_epoch", "Network.evaluate", "Network.predict",
              "Network.loss_and_grad", "Network.optimizer_step", "activation_forward",
              "activation_backward", "losses", "dense_forward", "dense_backward", "sgd_step",
              "adam_step", "all_in_range", "Network.train_epochs", "shuffle",
              "labels_in_range", "selftest")  # in the order of the enum above


def _debug_gil():
    """Whether this build counts GIL checks (built with FASTBP_DEBUG_GIL=1)."""
    return bool(FBP_DEBUG_GIL_BUILD)


def _gil_counts():
    """{site: (blocks run, blocks run with the GIL held)} in a debug build, else {}."""
    if not FBP_DEBUG_GIL_BUILD:
        return {}
    return {name: (fbp_gil_count(i, 0), fbp_gil_count(i, 1))
            for i, name in enumerate(_GIL_SITES)}


def _gil_held_count():
    """How many nogil blocks ran with the GIL held (0 in a correct build; always 0 when not
    a debug build). The "selftest" site is left out: it holds the GIL on purpose."""
    return sum(held for name, (_, held) in _gil_counts().items() if name != "selftest")


def _gil_selftest():
    """Run the check with the GIL held, at the "selftest" site: tests/test_gil.py uses it to show
    the counter does see a held GIL."""
    _gil_check(GIL_SELFTEST)

cdef fbp_blas BLAS
BLAS.sgemm = <fbp_sgemm_fn>sgemm
BLAS.dgemm = <fbp_dgemm_fn>dgemm


# ---- numpy's random integers for shuffles in C ----
cdef uint64_t _random_interval(void *state, uint64_t max) noexcept nogil:
    return random_interval(<bitgen_t *>state, max)


cdef fbp_rng _rng_of(generator) except *:
    """The fbp_rng drawing from a numpy Generator's bit generator (the caller holds its lock
    while C draws, as Generator's own methods do)."""
    if not isinstance(generator, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(generator).__name__}")
    cdef fbp_rng rng
    rng.interval = _random_interval
    rng.state = PyCapsule_GetPointer(generator.bit_generator.capsule, "BitGenerator")
    return rng

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
    if not a.flags.c_contiguous or not a.flags.aligned:
        raise ValueError(f"{name} must be C-contiguous and aligned")
    if writable and not a.flags.writeable:
        raise ValueError(f"{name} must be writable")


cdef inline void *_data(cnp.ndarray a) noexcept:
    return cnp.PyArray_DATA(a)


def shuffle(cnp.ndarray perm not None, rng):
    """perm[...] = rng.permutation(len(perm)), in place, drawn as numpy draws it (the same
    numbers and the same generator state after), holding the generator's lock. The GIL is kept
    for short arrays (see SHUFFLE_NOGIL_MIN)."""
    _check(perm, "perm", np.int64, (perm.shape[0],), writable=True)
    cdef fbp_rng r = _rng_of(rng)
    cdef ptrdiff_t n = perm.shape[0]
    cdef int64_t *p = <int64_t *>_data(perm)
    with rng.bit_generator.lock:
        if n < SHUFFLE_NOGIL_MIN:
            fbp_shuffle(&r, n, p)
        else:
            with nogil:
                _gil_check(GIL_SHUFFLE)
                fbp_shuffle(&r, n, p)


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
    cdef cnp.ndarray _sizes, _activations, _slopes, _work, _batch_labels, _batch_weights

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
            self._batch_weights = np.zeros(max_batch, dtype=self.dtype)
            self.net.work = _data(self._work)
            self.net.batch_labels = <int64_t *>_data(self._batch_labels)
            self.net.batch_weights = _data(self._batch_weights)
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

    def train_epoch(self, X, targets, cnp.ndarray perm not None, int batch_size,
                    sample_weight=None):
        """Train one epoch on the rows perm of (X, targets). Returns (mean loss, samples trained).

        perm must hold indices in [0, len(X)) (the caller builds it); the epoch stops before
        the step of the first batch whose loss or gradient is not finite. sample_weight, one
        finite value >= 0 per row of X (the caller checks the values), weights each sample's
        loss; None trains unweighted."""
        cdef Py_ssize_t n_rows = self._check_inputs(X)
        _check(perm, "perm", np.int64, (perm.shape[0],))
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self._targets(targets, n_rows)
        if sample_weight is not None:
            _check(sample_weight, "sample_weight", self.dtype, (n_rows,))
        self.reserve(batch_size)
        cdef ptrdiff_t n = perm.shape[0], n_trained = 0
        cdef double loss
        cdef void *x = _data(X)
        cdef void *t = _data(targets)
        cdef const int64_t *idx = <const int64_t *>_data(perm)
        cdef const int64_t *labels = <const int64_t *>t if self.net.loss == FBP_CCE_LABELS else NULL
        cdef const void *w = _data(sample_weight) if sample_weight is not None else NULL
        self._enter()
        try:
            with nogil:
                _gil_check(GIL_TRAIN_EPOCH)
                if self.is_f64:
                    loss = fbp_train_epoch_f64(&self.net, &self.opt, <const double *>x,
                                               <const double *>t, labels, <const double *>w,
                                               idx, n, batch_size, &n_trained)
                else:
                    loss = fbp_train_epoch_f32(&self.net, &self.opt, <const float *>x,
                                               <const float *>t, labels, <const float *>w,
                                               idx, n, batch_size, &n_trained)
        finally:
            self.busy = False
        return loss, n_trained

    def train_epochs(self, X, targets, cnp.ndarray perm not None, int batch_size, int epochs,
                     sample_weight=None, rng=None):
        """Train `epochs` epochs over all rows of (X, targets) in one C call, each over a fresh
        shuffle of the rows into perm (rng.permutation(len(X)), drawn as numpy draws it) when
        rng, a numpy Generator, is given, else over perm as it is. Returns (losses, epochs
        completed, samples trained in the last epoch run): an epoch that stops early (loss or
        gradient not finite) ends the call with its loss in losses[epochs completed]."""
        cdef Py_ssize_t n_rows = self._check_inputs(X)
        _check(perm, "perm", np.int64, (n_rows,), writable=True)
        if batch_size < 1 or epochs < 1:
            raise ValueError(f"batch_size and epochs must be >= 1, got {batch_size}, {epochs}")
        self._targets(targets, n_rows)
        if sample_weight is not None:
            _check(sample_weight, "sample_weight", self.dtype, (n_rows,))
        self.reserve(batch_size)
        cdef fbp_rng r
        cdef const fbp_rng *rng_ptr = NULL
        if rng is not None:
            r = _rng_of(rng)
            rng_ptr = &r
        cdef cnp.ndarray losses = np.full(epochs, np.nan)
        cdef double *loss_out = <double *>_data(losses)
        cdef ptrdiff_t n_trained = 0
        cdef int done = 0
        cdef void *x = _data(X)
        cdef void *t = _data(targets)
        cdef int64_t *idx = <int64_t *>_data(perm)
        cdef const int64_t *labels = <const int64_t *>t if self.net.loss == FBP_CCE_LABELS else NULL
        cdef const void *w = _data(sample_weight) if sample_weight is not None else NULL
        lock = rng.bit_generator.lock if rng is not None else contextlib.nullcontext()
        self._enter()
        try:
            with lock:  # the generator's, as its own methods hold it while drawing
                with nogil:
                    _gil_check(GIL_TRAIN_EPOCHS)
                    if self.is_f64:
                        done = fbp_train_epochs_f64(&self.net, &self.opt, <const double *>x,
                                                    <const double *>t, labels, <const double *>w,
                                                    rng_ptr, idx, n_rows, batch_size, epochs,
                                                    loss_out, &n_trained)
                    else:
                        done = fbp_train_epochs_f32(&self.net, &self.opt, <const float *>x,
                                                    <const float *>t, labels, <const float *>w,
                                                    rng_ptr, idx, n_rows, batch_size, epochs,
                                                    loss_out, &n_trained)
        finally:
            self.busy = False
        return losses, done, n_trained

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
                _gil_check(GIL_EVALUATE)
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
                _gil_check(GIL_PREDICT)
                if self.is_f64:
                    fbp_predict_f64(&self.net, <const double *>x, n, <double *>o)
                else:
                    fbp_predict_f32(&self.net, <const float *>x, n, <float *>o)
        finally:
            self.busy = False
        return out

    def loss_and_grad(self, X, targets, sample_weight=None):
        """Loss of one batch and the gradient of every parameter, into self.grads (no step);
        sample_weight (one value per row, or None) as in train_epoch."""
        cdef Py_ssize_t n = self._check_inputs(X)
        if n < 1:
            raise ValueError("X must have at least one row")
        self._targets(targets, n)
        if sample_weight is not None:
            _check(sample_weight, "sample_weight", self.dtype, (n,))
        self.reserve(n)
        cdef void *x = _data(X)
        cdef void *t = _data(targets)
        cdef const int64_t *labels = <const int64_t *>t if self.net.loss == FBP_CCE_LABELS else NULL
        cdef const void *w = _data(sample_weight) if sample_weight is not None else NULL
        cdef double loss
        self._enter()
        try:
            with nogil:
                _gil_check(GIL_LOSS_AND_GRAD)
                if self.is_f64:
                    loss = fbp_loss_and_grad_f64(&self.net, <const double *>x, <const double *>t,
                                                 labels, <const double *>w, <int>n)
                else:
                    loss = fbp_loss_and_grad_f32(&self.net, <const float *>x, <const float *>t,
                                                 labels, <const float *>w, <int>n)
        finally:
            self.busy = False
        return loss

    def optimizer_step(self):
        """One optimizer step with the gradients in self.grads."""
        cdef ptrdiff_t n = self.params.shape[0]
        self._enter()
        try:
            with nogil:
                _gil_check(GIL_OPTIMIZER_STEP)
                if self.is_f64:
                    fbp_optimizer_step_f64(&self.opt, n, <double *>self.net.params,
                                           <const double *>self.net.grads)
                else:
                    fbp_optimizer_step_f32(&self.opt, n, <float *>self.net.params,
                                           <const float *>self.net.grads)
        finally:
            self.busy = False


# ---- kernel wrappers for fastbp.ops ----
# One `def` per kernel family, named as in fastbp.ops and with its argument names, so that the
# messages raised here read right to the user. fastbp.ops converts the user's inputs (copies of
# non-contiguous or integer arrays), validates scalars, maps names to codes and allocates
# results; this section checks, on the exact arrays handed to C, everything memory safety needs:
# dtype (float32/float64, native byte order, one dtype per call), C-contiguity, alignment,
# writability of outputs, shapes, sizes that fit the kernels' `int`, the overlaps each kernel's
# aliasing rule forbids (src_c/kernels.h) and class labels in range. Everything is checked
# before anything is written; then the kernel runs with the GIL released. The `cdef` helpers
# are fused over `floating` (one source for float and double), `noexcept nogil`, and handle the
# zero-size cases the kernels do not (BLAS rejects a leading dimension of 0; softmax and
# logsumexp read element 0 of each row).
from cython cimport floating
from libc.float cimport DBL_MAX, FLT_MAX
from libc.limits cimport INT_MAX
from libc.math cimport INFINITY
from libc.stdint cimport uintptr_t
from libc.string cimport memmove, memset

_DTYPE_NAMES = {cnp.NPY_FLOAT: "float32", cnp.NPY_DOUBLE: "float64"}


def _require(a, str name, int typenum, bint writable=False, str dtype_from=None):
    """Raise unless `a` is a C-contiguous, aligned, native-endian ndarray of `typenum`
    (writable if asked); `typenum` -1 accepts float32 or float64. Returns the typenum."""
    if not isinstance(a, cnp.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
    cdef cnp.ndarray arr = <cnp.ndarray>a
    cdef int t = cnp.PyArray_TYPE(arr)
    if (t != typenum and not (typenum == -1 and t in _DTYPE_NAMES)) \
            or not cnp.PyArray_ISNOTSWAPPED(arr):
        if typenum == -1:
            raise TypeError(f"{name} must have dtype float32 or float64, got {a.dtype}")
        why = f" (the dtype of {dtype_from})" if dtype_from else ""
        raise TypeError(f"{name} must have dtype {_DTYPE_NAMES[typenum]}{why}, got {a.dtype}")
    if writable and not cnp.PyArray_ISWRITEABLE(arr):
        raise ValueError(f"{name} is read-only, but it is written in place")
    if not cnp.PyArray_IS_C_CONTIGUOUS(arr):
        if writable:
            raise ValueError(f"{name} must be C-contiguous: it is written in place, and a "
                             "non-contiguous or Fortran-order array cannot be (pass a "
                             "C-contiguous array, e.g. from np.empty or np.zeros)")
        raise ValueError(f"{name} must be C-contiguous")
    if not cnp.PyArray_ISALIGNED(arr):
        raise ValueError(f"{name} must be aligned to its dtype (arrays numpy allocates are)")
    return t


def _require_shape(a, str name, tuple shape):
    if a.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {a.shape}")


def _require_int(Py_ssize_t value, str what):
    if value > INT_MAX:
        raise ValueError(f"{what} is {value}, more than the kernels' limit {INT_MAX}; "
                         "split the array into smaller batches")


cdef inline bint _spans_overlap(uintptr_t a, uintptr_t na, uintptr_t b,
                                uintptr_t nb) noexcept nogil:
    """Whether the byte ranges [a, a + na) and [b, b + nb) intersect (empty ones never do)."""
    return na > 0 and nb > 0 and a < b + nb and b < a + na


def _overlap(cnp.ndarray a, cnp.ndarray b):
    """Whether two C-contiguous arrays share a byte: exact for contiguous arrays, which each
    span one interval (empty arrays share nothing, as np.shares_memory says)."""
    return _spans_overlap(<uintptr_t>cnp.PyArray_DATA(a), <uintptr_t>cnp.PyArray_NBYTES(a),
                          <uintptr_t>cnp.PyArray_DATA(b), <uintptr_t>cnp.PyArray_NBYTES(b))


def _same_memory(cnp.ndarray a, cnp.ndarray b):
    return (cnp.PyArray_DATA(a) == cnp.PyArray_DATA(b)
            and cnp.PyArray_NBYTES(a) == cnp.PyArray_NBYTES(b))


def _require_disjoint(cnp.ndarray a, str name_a, cnp.ndarray b, str name_b):
    if _overlap(a, b):
        raise ValueError(f"{name_a} and {name_b} must not share memory")


def _rows_cols(cnp.ndarray a, bint last_axis):
    """(rows, cols) of `a` seen as a matrix: the last axis as columns when `last_axis`
    (row-wise operations), else one column (element-wise operations). 0-d is one element."""
    cdef Py_ssize_t n = cnp.PyArray_SIZE(a), rows = 1, k
    if not last_axis:
        return n, 1
    for k in range(a.ndim - 1):
        rows *= a.shape[k]
    return rows, (a.shape[a.ndim - 1] if a.ndim else 1)


cdef void _activation_forward(int act, double slope, Py_ssize_t rows, Py_ssize_t cols,
                              floating *Z) noexcept nogil:
    """Z = act(Z) in place, rows x cols, in chunks of at most INT_MAX rows (cols <= INT_MAX)."""
    cdef Py_ssize_t start = 0, chunk
    if cols == 0:
        return
    while start < rows:
        chunk = rows - start if rows - start < INT_MAX else INT_MAX
        if floating is float:
            fbp_activation_forward_f32(act, slope, <int>chunk, <int>cols, Z + start * cols)
        else:
            fbp_activation_forward_f64(act, slope, <int>chunk, <int>cols, Z + start * cols)
        start += chunk


cdef void _activation_backward(int act, double slope, Py_ssize_t rows, Py_ssize_t cols,
                               const floating *A, floating *dA) noexcept nogil:
    """dA = dA * act'(A) in place, rows x cols, in chunks of at most INT_MAX rows."""
    cdef Py_ssize_t start = 0, chunk
    if cols == 0:
        return
    while start < rows:
        chunk = rows - start if rows - start < INT_MAX else INT_MAX
        if floating is float:
            fbp_activation_backward_f32(act, slope, <int>chunk, <int>cols, A + start * cols,
                                        dA + start * cols)
        else:
            fbp_activation_backward_f64(act, slope, <int>chunk, <int>cols, A + start * cols,
                                        dA + start * cols)
        start += chunk


def activation_forward(Z, out, int act, double slope):
    """out = act(Z), row-wise over the last axis for softmax. out may be Z or overlap it."""
    cdef int t = _require(Z, "Z", -1)
    _require(out, "out", t, True, "Z")
    _require_shape(out, "out", Z.shape)
    rows, cols = _rows_cols(Z, act == FBP_SOFTMAX)
    _require_int(cols, "the length of the last axis")
    cdef Py_ssize_t r = rows, c = cols
    cdef void *z = _data(Z)
    cdef void *o = _data(out)
    cdef size_t nbytes = cnp.PyArray_NBYTES(Z)
    with nogil:
        _gil_check(GIL_ACTIVATION_FORWARD)
        if o != z:
            memmove(o, z, nbytes)
        if t == cnp.NPY_DOUBLE:
            _activation_forward(act, slope, r, c, <double *>o)
        else:
            _activation_forward(act, slope, r, c, <float *>o)
    return out


def activation_backward(A, dA, out, int act, double slope):
    """out = dA * act'(A) (softmax: the row-wise Jacobian-vector product). out may be dA or
    overlap it; it must not overlap A."""
    cdef int t = _require(A, "A", -1)
    _require(dA, "dA", t, False, "A")
    _require(out, "out", t, True, "A")
    _require_shape(dA, "dA", A.shape)
    _require_shape(out, "out", A.shape)
    if _overlap(out, A):
        raise ValueError("out must not share memory with A (A is read while out is written); "
                         "out may be dA")
    rows, cols = _rows_cols(A, act == FBP_SOFTMAX)
    _require_int(cols, "the length of the last axis")
    cdef Py_ssize_t r = rows, c = cols
    cdef const void *a = _data(A)
    cdef void *g = _data(dA)
    cdef void *o = _data(out)
    cdef size_t nbytes = cnp.PyArray_NBYTES(A)
    with nogil:
        _gil_check(GIL_ACTIVATION_BACKWARD)
        if o != g:
            memmove(o, g, nbytes)
        if t == cnp.NPY_DOUBLE:
            _activation_backward(act, slope, r, c, <const double *>a, <double *>o)
        else:
            _activation_backward(act, slope, r, c, <const float *>a, <float *>o)
    return out


cdef double _loss(int loss, int rows, int cols, const floating *Z, const floating *Y,
                  const int64_t *labels, floating *grad) noexcept nogil:
    if floating is float:
        if loss == FBP_MSE:
            return fbp_mse_f32(rows, cols, Z, Y, grad)
        if loss == FBP_BCE:
            return fbp_bce_logits_f32(rows, cols, Z, Y, grad)
        if loss == FBP_CCE_LABELS:
            return fbp_softmax_xent_labels_f32(rows, cols, Z, labels, grad)
        return fbp_softmax_xent_probs_f32(rows, cols, Z, Y, grad)
    else:
        if loss == FBP_MSE:
            return fbp_mse_f64(rows, cols, Z, Y, grad)
        if loss == FBP_BCE:
            return fbp_bce_logits_f64(rows, cols, Z, Y, grad)
        if loss == FBP_CCE_LABELS:
            return fbp_softmax_xent_labels_f64(rows, cols, Z, labels, grad)
        return fbp_softmax_xent_probs_f64(rows, cols, Z, Y, grad)


def _loss_call(int loss, str input_name, Z, target, out):
    """Shared by the loss wrappers: check, then (mean loss, out) with out = d(loss)/d(Z).
    out may be Z itself (each element is read before it is written) but not overlap it
    otherwise; out must not overlap the target. An empty input gives NaN, the mean of
    nothing (as numpy and torch)."""
    cdef int t = _require(Z, input_name, -1)
    cdef bint labels = loss == FBP_CCE_LABELS
    _require(out, "out", t, True, input_name)
    _require_shape(out, "out", Z.shape)
    if labels:
        _require(target, "target", cnp.NPY_INT64)
        _require_shape(target, "target", Z.shape[:1])
    else:
        _require(target, "target", t, False, input_name)
        _require_shape(target, "target", Z.shape)
    if _overlap(out, Z) and not _same_memory(out, Z):
        raise ValueError(f"out must be {input_name} itself or not share memory with it")
    if _overlap(out, target):
        raise ValueError("out must not share memory with target")
    rows, cols = _rows_cols(Z, True)
    _require_int(rows, "the number of rows")
    _require_int(cols, "the number of columns")
    cdef int r = rows, c = cols, i
    if loss in (FBP_CCE_LABELS, FBP_CCE_PROBS) and c == 0 and r > 0:
        raise ValueError(f"{input_name} must have at least one column (class)")
    cdef const int64_t *lab = NULL
    if labels:
        lab = <const int64_t *>_data(target)
        for i in range(r):
            if lab[i] < 0 or lab[i] >= c:
                raise ValueError(
                    f"target holds class labels out of range: expected integers in [0, {c}) "
                    f"for {c} classes, got target[{i}] = {lab[i]}")
    if r == 0 or c == 0:
        return float("nan"), out
    cdef const void *z = _data(Z)
    cdef const void *y = NULL if labels else _data(target)
    cdef void *o = _data(out)
    cdef double value
    with nogil:
        _gil_check(GIL_LOSSES)
        if t == cnp.NPY_DOUBLE:
            value = _loss(loss, r, c, <const double *>z, <const double *>y, lab, <double *>o)
        else:
            value = _loss(loss, r, c, <const float *>z, <const float *>y, lab, <float *>o)
    return value, out


def mse(pred, target, out):
    """mean((pred - target)**2) and its gradient 2 (pred - target) / size, into out."""
    return _loss_call(FBP_MSE, "pred", pred, target, out)


def bce_logits(logits, target, out):
    """Binary cross-entropy of sigmoid(logits), mean over elements, and its gradient."""
    return _loss_call(FBP_BCE, "logits", logits, target, out)


def softmax_xent_labels(logits, target, out):
    """Softmax cross-entropy against int64 class indices, mean over rows, and its gradient."""
    return _loss_call(FBP_CCE_LABELS, "logits", logits, target, out)


def softmax_xent_probs(logits, target, out):
    """Softmax cross-entropy against target rows (one-hot / probabilities) and its gradient."""
    return _loss_call(FBP_CCE_PROBS, "logits", logits, target, out)


cdef void _dense_forward(Py_ssize_t rows, Py_ssize_t n_in, Py_ssize_t n_out, const floating *X,
                         const floating *W, const floating *b, int act, double slope,
                         floating *Y) noexcept nogil:
    """Y = act(X.W + b). With n_in == 0 there is no product (and BLAS would reject the
    leading dimension 0): Y = act(b) on every row."""
    cdef Py_ssize_t r, j
    if rows == 0 or n_out == 0:
        return
    if n_in == 0:
        for r in range(rows):
            for j in range(n_out):
                Y[r * n_out + j] = b[j]
        _activation_forward(act, slope, rows, n_out, Y)
    elif floating is float:
        fbp_dense_forward_f32(&BLAS, <int>rows, <int>n_in, <int>n_out, X, W, b, act, slope, Y)
    else:
        fbp_dense_forward_f64(&BLAS, <int>rows, <int>n_in, <int>n_out, X, W, b, act, slope, Y)


cdef void _dense_backward(Py_ssize_t rows, Py_ssize_t n_in, Py_ssize_t n_out, const floating *X,
                          const floating *W, const floating *dZ, floating *dW, floating *db,
                          floating *dX, floating *scratch) noexcept nogil:
    """dW = X^T.dZ, db = column sums of dZ, dX = dZ.W^T (dX may be NULL; scratch as in
    src_c/kernels.h). When a size is 0 the products are sums over nothing (zeros) or empty,
    computed without BLAS."""
    cdef Py_ssize_t r, j
    if rows == 0 or n_in == 0 or n_out == 0:
        memset(dW, 0, <size_t>(n_in * n_out) * sizeof(floating))
        memset(db, 0, <size_t>n_out * sizeof(floating))
        if dX != NULL:
            memset(dX, 0, <size_t>(rows * n_in) * sizeof(floating))
        for r in range(rows):
            for j in range(n_out):
                db[j] += dZ[r * n_out + j]
    elif floating is float:
        fbp_dense_backward_f32(&BLAS, <int>rows, <int>n_in, <int>n_out, X, W, dZ, dW, db, dX,
                               scratch)
    else:
        fbp_dense_backward_f64(&BLAS, <int>rows, <int>n_in, <int>n_out, X, W, dZ, dW, db, dX,
                               scratch)


def _dense_shapes(X, W):
    """(rows, in_features, out_features) of a dense layer's X and W, checked to agree and to
    fit in a C int."""
    if W.ndim != 2:
        raise ValueError(f"W must be 2-d (in_features, out_features), got shape {W.shape}")
    n_in, n_out = W.shape
    if X.ndim != 2 or X.shape[1] != n_in:
        raise ValueError(f"X must have shape (n_samples, {n_in}) to match W {W.shape}, "
                         f"got {X.shape}")
    rows = X.shape[0]
    for size, what in ((rows, "the number of rows"), (n_in, "in_features"),
                       (n_out, "out_features")):
        _require_int(size, what)
    return rows, n_in, n_out


def _bias_shape_ok(b, Py_ssize_t n_out):
    return b.shape == (n_out,) or b.shape == (1, n_out)


def dense_forward(X, W, b, int act, double slope, out):
    """out = act(X.W + b); X (rows, in), W (in, out), b (out,) or (1, out), out (rows, out).
    out must not overlap X, W or b."""
    cdef int t = _require(W, "W", -1)
    _require(X, "X", t, False, "W")
    _require(b, "b", t, False, "W")
    _require(out, "out", t, True, "W")
    rows, n_in, n_out = _dense_shapes(X, W)
    if not _bias_shape_ok(b, n_out):
        raise ValueError(f"b must have shape ({n_out},) or (1, {n_out}) to match W {W.shape}, "
                         f"got {b.shape}")
    _require_shape(out, "out", (rows, n_out))
    for other, name in ((X, "X"), (W, "W"), (b, "b")):
        _require_disjoint(out, "out", other, name)
    cdef Py_ssize_t r = rows, i = n_in, o = n_out
    cdef const void *x = _data(X)
    cdef const void *w = _data(W)
    cdef const void *bb = _data(b)
    cdef void *y = _data(out)
    with nogil:
        _gil_check(GIL_DENSE_FORWARD)
        if t == cnp.NPY_DOUBLE:
            _dense_forward(r, i, o, <const double *>x, <const double *>w, <const double *>bb,
                           act, slope, <double *>y)
        else:
            _dense_forward(r, i, o, <const float *>x, <const float *>w, <const float *>bb,
                           act, slope, <float *>y)
    return out


def dense_backward(X, W, dZ, dX, dW, db):
    """dW = X^T.dZ, db = sum of dZ over rows, dX = dZ.W^T (dX may be None: not computed).
    The outputs must not overlap the inputs or each other."""
    cdef int t = _require(W, "W", -1)
    _require(X, "X", t, False, "W")
    _require(dZ, "dZ", t, False, "W")
    _require(dW, "dW", t, True, "W")
    _require(db, "db", t, True, "W")
    if dX is not None:
        _require(dX, "dX", t, True, "W")
    rows, n_in, n_out = _dense_shapes(X, W)
    _require_shape(dZ, "dZ", (rows, n_out))
    _require_shape(dW, "dW", (n_in, n_out))
    if not _bias_shape_ok(db, n_out):
        raise ValueError(f"db must have shape ({n_out},) or (1, {n_out}), got {db.shape}")
    outputs = [(dW, "dW"), (db, "db")]
    if dX is not None:
        _require_shape(dX, "dX", (rows, n_in))
        outputs.append((dX, "dX"))
    for k, (output, name) in enumerate(outputs):
        for other, other_name in ((X, "X"), (W, "W"), (dZ, "dZ")) + tuple(outputs[:k]):
            _require_disjoint(output, name, other, other_name)
    cdef Py_ssize_t r = rows, i = n_in, o = n_out
    cdef const void *x = _data(X)
    cdef const void *w = _data(W)
    cdef const void *dz = _data(dZ)
    cdef void *dw = _data(dW)
    cdef void *dbb = _data(db)
    cdef void *dx = _data(dX) if dX is not None else NULL
    # W^T for the small-matrix kernel's dX (at most 8192 values; none when the layer is large)
    cdef Py_ssize_t n_scratch = 0
    if dX is not None and r > 0 and i > 0 and o > 0:
        n_scratch = fbp_transpose_scratch_len(<int>i, <int>o)
    cdef cnp.ndarray scratch_array = np.empty(n_scratch, dtype=W.dtype) if n_scratch else None
    cdef void *scratch = _data(scratch_array) if n_scratch else NULL
    with nogil:
        _gil_check(GIL_DENSE_BACKWARD)
        if t == cnp.NPY_DOUBLE:
            _dense_backward(r, i, o, <const double *>x, <const double *>w, <const double *>dz,
                            <double *>dw, <double *>dbb, <double *>dx, <double *>scratch)
        else:
            _dense_backward(r, i, o, <const float *>x, <const float *>w, <const float *>dz,
                            <float *>dw, <float *>dbb, <float *>dx, <float *>scratch)
    return dX, dW, db


def _optimizer_arrays(param, grad, states):
    """Check param (written) and grad (read) and the state arrays (written): one dtype, one
    shape, no two sharing memory. Returns the typenum."""
    cdef int t = _require(param, "param", -1, True)
    _require(grad, "grad", t, False, "param")
    _require_shape(grad, "grad", param.shape)
    checked = [(param, "param"), (grad, "grad")]
    for state, name in states:
        _require(state, name, t, True, "param")
        _require_shape(state, name, param.shape)
        checked.append((state, name))
    for k in range(1, len(checked)):
        for j in range(k):
            _require_disjoint(checked[k][0], checked[k][1], checked[j][0], checked[j][1])
    return t


def sgd_step(param, grad, velocity, double lr, double momentum, bint nesterov,
             double weight_decay):
    """One torch.optim.SGD step in place on param (and velocity, when momentum > 0)."""
    states = [(velocity, "velocity")] if momentum != 0 else []
    if momentum != 0 and velocity is None:
        raise ValueError("momentum > 0 needs a velocity array (start with np.zeros_like(param))")
    cdef int t = _optimizer_arrays(param, grad, states)
    cdef ptrdiff_t n = cnp.PyArray_SIZE(param)
    cdef void *p = _data(param)
    cdef const void *g = _data(grad)
    cdef void *v = _data(velocity) if momentum != 0 else NULL
    with nogil:
        _gil_check(GIL_SGD_STEP)
        if t == cnp.NPY_DOUBLE:
            fbp_sgd_step_f64(n, <double *>p, <const double *>g, <double *>v, lr, momentum,
                             nesterov, weight_decay)
        else:
            fbp_sgd_step_f32(n, <float *>p, <const float *>g, <float *>v, lr, momentum,
                             nesterov, weight_decay)
    return param


def adam_step(param, grad, m, v, int64_t step, double lr, double beta1, double beta2,
              double eps, double weight_decay, bint decoupled):
    """One torch.optim.Adam (AdamW when decoupled) step number `step` (>= 1) in place on
    param, m and v."""
    if step < 1:
        raise ValueError(f"step must be >= 1 (the number of this step), got {step}")
    cdef int t = _optimizer_arrays(param, grad, [(m, "m"), (v, "v")])
    cdef ptrdiff_t n = cnp.PyArray_SIZE(param)
    cdef void *p = _data(param)
    cdef const void *g = _data(grad)
    cdef void *m_ = _data(m)
    cdef void *v_ = _data(v)
    with nogil:
        _gil_check(GIL_ADAM_STEP)
        if t == cnp.NPY_DOUBLE:
            fbp_adam_step_f64(n, <double *>p, <const double *>g, <double *>m_, <double *>v_,
                              step, lr, beta1, beta2, eps, weight_decay, decoupled)
        else:
            fbp_adam_step_f32(n, <float *>p, <const float *>g, <float *>m_, <float *>v_,
                              step, lr, beta1, beta2, eps, weight_decay, decoupled)
    return param


def all_in_range(a, double low, double high):
    """Whether low <= x <= high for every entry x of `a` (a C-contiguous float32/float64
    ndarray; NaN is in no range): one scan without numpy's boolean temporaries, with the GIL
    released, stopping at the first block that holds a value outside. all_in_range(a, -inf,
    inf) is False exactly when `a` holds a NaN; use all_finite for infinities."""
    cdef int t = _require(a, "a", -1)
    cdef ptrdiff_t n = cnp.PyArray_SIZE(a)
    cdef const void *p = _data(a)
    cdef int ok
    if t == cnp.NPY_FLOAT:  # converting a double beyond float's range to float is undefined
        low = low if low == -INFINITY else max(low, -FLT_MAX)
        high = high if high == INFINITY else min(high, FLT_MAX)
    if n < SCAN_NOGIL_MIN:
        ok = _scan(t, n, p, low, high)
    else:
        with nogil:
            _gil_check(GIL_ALL_IN_RANGE)
            ok = _scan(t, n, p, low, high)
    return ok != 0


cdef int _scan(int t, ptrdiff_t n, const void *p, double low, double high) noexcept nogil:
    if t == cnp.NPY_DOUBLE:
        return fbp_all_in_range_f64(n, <const double *>p, low, high)
    return fbp_all_in_range_f32(n, <const float *>p, <float>low, <float>high)


def labels_in_range(a, int64_t n_classes):
    """Whether every entry of `a` (a C-contiguous int64 ndarray) is a class index in
    [0, n_classes). Keeps the GIL below SCAN_NOGIL_MIN entries, as all_in_range."""
    _require(a, "labels", cnp.NPY_INT64)
    cdef ptrdiff_t n = cnp.PyArray_SIZE(a)
    cdef const int64_t *p = <const int64_t *>_data(a)
    cdef int ok
    if n < SCAN_NOGIL_MIN:
        ok = fbp_labels_in_range(n, p, n_classes)
    else:
        with nogil:
            _gil_check(GIL_LABELS_IN_RANGE)
            ok = fbp_labels_in_range(n, p, n_classes)
    return ok != 0


def all_finite(a):
    """Whether every entry of `a` (a C-contiguous float32/float64 ndarray) is finite."""
    if cnp.PyArray_TYPE(a) == cnp.NPY_DOUBLE:
        return all_in_range(a, -DBL_MAX, DBL_MAX)
    return all_in_range(a, -FLT_MAX, FLT_MAX)


_SMALL_GEMM_LEVELS = ("blas", "avx2", "avx512")


def _small_gemm_kernel():
    """Which kernel small products use on this CPU now: "avx512", "avx2" or "blas"."""
    return _SMALL_GEMM_LEVELS[fbp_small_gemm_isa()]


def _set_small_gemm_level(str level):
    """For tests: let small products use at most `level` ("avx512", "avx2" or "blas", the
    last meaning BLAS for every product); returns the previous level. Not while training."""
    if level not in _SMALL_GEMM_LEVELS:
        raise ValueError(f"level must be one of {_SMALL_GEMM_LEVELS}, got {level!r}")
    global fbp_small_gemm_level
    previous = _SMALL_GEMM_LEVELS[fbp_small_gemm_level]
    fbp_small_gemm_level = _SMALL_GEMM_LEVELS.index(level)
    return previous
