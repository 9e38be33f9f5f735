"""The register-blocked small-matrix kernels (src_c/small_gemm.c), reached through a dense
layer's forward and backward pass (fastbp.ops and training), under each kernel this CPU has:
AVX-512, AVX2+FMA, and BLAS alone (``_core._set_small_gemm_level``).

Shapes cover every block the kernels cut C into: 1-4 rows per block and a remainder, 1-4
vectors per panel with partial last vectors (masked loads and stores), more than one panel,
inner dimensions below, at and beyond the partial-sum split (1-9). Each result is checked
against float64 numpy, the bytes around every output are checked untouched, and a row's result
must not depend on the other rows of its call (the kernels' summation order depends on the
shapes only)."""
import numpy as np
import pytest

import fastbp as fb
from fastbp import _core, ops

# the kernels this CPU can run: at the default level the best one is in use, and every CPU with
# AVX-512 has AVX2 and FMA
LEVELS = {"avx512": ["avx512", "avx2", "blas"], "avx2": ["avx2", "blas"],
          "blas": ["blas"]}[_core._small_gemm_kernel()]
ROWS = (1, 2, 3, 4, 5, 7, 8, 9, 17, 64)
INNER = (1, 2, 3, 4, 5, 9, 30)
OUTER = (2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 48, 49, 63, 64, 65, 80)
TOL = {np.float32: dict(rtol=2e-5, atol=2e-5), np.float64: dict(rtol=1e-12, atol=1e-12)}
GUARD = 16  # sentinel elements on each side of every output


@pytest.fixture(params=LEVELS)
def level(request):
    previous = _core._set_small_gemm_level(request.param)
    yield request.param
    _core._set_small_gemm_level(previous)


def guarded(shape, dtype):
    """(an uninitialised-looking C-contiguous array of `shape` inside a buffer, the buffer):
    the buffer's GUARD elements on each side hold a sentinel that must survive."""
    n = int(np.prod(shape))
    buffer = np.full(n + 2 * GUARD, 777.0, dtype)
    return buffer[GUARD:GUARD + n].reshape(shape), buffer


def assert_guards_intact(buffer):
    assert (buffer[:GUARD] == 777.0).all() and (buffer[-GUARD:] == 777.0).all(), \
        "a kernel wrote outside its output"


def test_the_kernel_in_use_is_reported():
    assert _core._small_gemm_kernel() in ("avx512", "avx2", "blas")
    previous = _core._set_small_gemm_level("blas")
    try:
        assert _core._small_gemm_kernel() == "blas"
    finally:
        _core._set_small_gemm_level(previous)
    with pytest.raises(ValueError, match="level must be one of"):
        _core._set_small_gemm_level("sse")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dense_forward_and_backward_match_numpy(level, dtype):
    rng = np.random.default_rng(0)
    for rows in ROWS:
        for n_in in INNER:
            for n_out in OUTER:
                X = rng.standard_normal((rows, n_in)).astype(dtype)
                W = rng.standard_normal((n_in, n_out)).astype(dtype)
                b = rng.standard_normal(n_out).astype(dtype)
                dZ = rng.standard_normal((rows, n_out)).astype(dtype)
                where = f"{level} {np.dtype(dtype).name} rows={rows} in={n_in} out={n_out}"
                Y, Y_buf = guarded((rows, n_out), dtype)
                ops.dense_forward(X, W, b, out=Y)
                X64, W64, dZ64 = (a.astype(np.float64) for a in (X, W, dZ))
                np.testing.assert_allclose(Y, X64 @ W64 + b, **TOL[dtype], err_msg=where)
                dX, dX_buf = guarded((rows, n_in), dtype)
                dW, dW_buf = guarded((n_in, n_out), dtype)
                db, db_buf = guarded((n_out,), dtype)
                ops.dense_backward(X, W, dZ, dX=dX, dW=dW, db=db)
                np.testing.assert_allclose(dX, dZ64 @ W64.T, **TOL[dtype], err_msg=where)
                np.testing.assert_allclose(dW, X64.T @ dZ64, **TOL[dtype], err_msg=where)
                np.testing.assert_allclose(db, dZ64.sum(0), **TOL[dtype], err_msg=where)
                for buffer in (Y_buf, dX_buf, dW_buf, db_buf):
                    assert_guards_intact(buffer)


@pytest.mark.parametrize("level", [name for name in LEVELS if name != "blas"], indirect=True)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_in, n_out", [(64, 32), (32, 10), (30, 16), (9, 33)])
def test_a_rows_result_does_not_depend_on_the_other_rows(level, dtype, n_in, n_out):
    """Bit for bit: the output and input gradient of a row are the same computed alone, in a
    block of 4 and in a batch with a remainder block (a property of fastbp's kernels; BLAS
    makes no such promise)."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((13, n_in)).astype(dtype)
    W = rng.standard_normal((n_in, n_out)).astype(dtype)
    b = rng.standard_normal(n_out).astype(dtype)
    dZ = rng.standard_normal((13, n_out)).astype(dtype)
    whole = ops.dense_forward(X, W, b)
    dX_whole = ops.dense_backward(X, W, dZ)[0]
    for i in range(13):
        np.testing.assert_array_equal(ops.dense_forward(X[i:i + 1], W, b)[0], whole[i])
        np.testing.assert_array_equal(ops.dense_backward(X[i:i + 1], W, dZ[i:i + 1])[0][0],
                                      dX_whole[i])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_training_agrees_across_kernels(dtype):
    """The same model trained with each kernel this CPU has ends with the same weights, to
    rounding: batches of 1 and 16 and the last partial batch take the small path. (With larger
    steps, lr=0.05, rounding differences grow chaotically over a few hundred steps.)"""
    rng = np.random.default_rng(2)
    X = rng.standard_normal((101, 12))
    y = rng.integers(0, 5, 101)
    results = {}
    for level_name in LEVELS:
        previous = _core._set_small_gemm_level(level_name)
        try:
            model = fb.Sequential([fb.Dense(12, 24, activation="tanh"),
                                   fb.Dense(24, 17, activation="relu"), fb.Dense(17, 5)],
                                  dtype=dtype, seed=3)
            model.compile("categorical_crossentropy", fb.SGD(lr=0.01, momentum=0.9))
            model.fit(X, y, epochs=1, batch_size=1, verbose=0)
            model.fit(X, y, epochs=2, batch_size=16, verbose=0)
            results[level_name] = model.get_weights()
        finally:
            _core._set_small_gemm_level(previous)
    rtol = 1e-5 if dtype == "float32" else 1e-13
    for level_name, weights in results.items():
        for got, want in zip(weights, results["blas"]):
            np.testing.assert_allclose(got, want, rtol=0, atol=rtol * np.abs(want).max(),
                                       err_msg=level_name)


def test_a_model_built_while_blas_is_forced_trains_once_the_kernel_is_back():
    """Regression: the workspace's room for the transposed weights was sized by the kernel in
    use when the model was built, so a model built under _set_small_gemm_level("blas") and
    trained after the level was restored wrote W^T past the end of its workspace (heap
    overflow under ASan). The room now depends on the layer shapes alone."""
    if "avx2" not in LEVELS:
        pytest.skip("this CPU has no small-matrix kernel")
    rng = np.random.default_rng(4)
    X, y = rng.standard_normal((40, 8)), rng.integers(0, 4, 40)
    previous = _core._set_small_gemm_level("blas")
    try:
        model = fb.Sequential([fb.Dense(8, 16, activation="relu"), fb.Dense(16, 40),
                               fb.Dense(40, 4)], dtype="float64", seed=0)
        model.compile("categorical_crossentropy", "sgd")
    finally:
        _core._set_small_gemm_level(previous)
    twin = fb.Sequential([fb.Dense(8, 16, activation="relu"), fb.Dense(16, 40),
                          fb.Dense(40, 4)], dtype="float64", seed=0)
    twin.compile("categorical_crossentropy", "sgd")
    for m in (model, twin):
        m.fit(X, y, epochs=2, batch_size=8, verbose=0)
    for a, b in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_array_equal(a, b)
