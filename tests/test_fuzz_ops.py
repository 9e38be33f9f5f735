"""Property-based tests of every public function of fastbp.ops (the fuzz tests follow)."""
import math

import numpy as np

from fastbp import ops

FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def test_relu_propagates_nan_as_numpy_and_torch():
    """relu(NaN) is NaN (numpy.maximum, torch.relu); it was 0, hiding NaN from the caller."""
    for dtype in FLOATS:
        Z = np.array([np.nan, -1.0, 0.0, 2.0, np.inf, -np.inf], dtype)
        np.testing.assert_array_equal(ops.relu(Z), np.maximum(Z, 0))
        np.testing.assert_array_equal(ops.dense_forward(np.ones((1, 1), dtype), Z[None, :],
                                                        np.zeros(6, dtype), "relu")[0],
                                      np.maximum(Z, 0))

def test_exp_of_nan_is_nan_without_undefined_behaviour():
    """NaN through every kernel that calls the vectorized exp (softmax, sigmoid, tanh, BCE,
    softmax cross-entropy) gives NaN. Under tools/run_sanitized.sh (UBSan with
    float-cast-overflow) this reported "-nan is outside the range of representable values of
    type 'long int'" in vecmath.h's pow2i until exp_v clamped NaN before converting it."""
    for dtype in FLOATS:
        Z = np.array([[np.nan, 0.0, 1.0], [0.5, np.nan, -np.inf]], dtype)
        assert np.isnan(ops.softmax(Z)).all()
        assert np.isnan(ops.sigmoid(Z)[0, 0]) and np.isnan(ops.tanh(Z)[0, 0])
        loss, grad = ops.binary_crossentropy(Z, np.ones_like(Z))
        assert math.isnan(loss) and np.isnan(grad[0, 0])
        loss, grad = ops.softmax_cross_entropy(Z, np.array([1, 0]))
        assert math.isnan(loss) and np.isnan(grad).all()

