"""A small correctness check of the built fastbp extension, run natively and then under
`qemu-x86_64 -cpu <older CPU>` by tools/check_portable.sh.

    python tools/portable_check.py --write ref.npz            on this machine
    python tools/portable_check.py --compare ref.npz --cpu haswell   under emulation

Every fastbp.ops kernel (with sizes that take the small-matrix kernels and the BLAS path,
and row lengths that exercise the vectorized loops' remainders) and a short training run, in
float32 and float64. Each result is checked against numpy here, and under --compare also
against the results this machine computed, within rounding: the runtime dispatch
(target_clones: AVX-512 / AVX2+FMA / baseline; small_gemm.c's AVX-512 / AVX2 / BLAS, checked
by name) must pick code the CPU has and compute the same numbers. An extension built for a
newer CPU dies here with "Illegal instruction".
"""
import argparse
import sys

import numpy as np

# the small-matrix kernel (src_c/small_gemm.c) each emulated CPU must get: AVX2+FMA on Haswell,
# BLAS alone on Nehalem (the AVX-512 kernel runs natively, where the host has AVX-512)
EXPECTED_SMALL_GEMM = {"haswell": "avx2", "nehalem": "blas"}
EXPECTED_FEATURES = {  # what numpy's CPU detection must report under each emulated CPU
    "haswell": {"AVX2": True, "FMA3": True, "AVX512F": False},
    "nehalem": {"SSE42": True, "AVX": False, "AVX2": False, "AVX512F": False},
}
RTOL = {"float32": 2e-5, "float64": 1e-12}


def reference_checks(results, name, got, want, dtype):
    np.testing.assert_allclose(got, want, rtol=RTOL[dtype] * 10, atol=RTOL[dtype],
                               err_msg=f"{name} disagrees with numpy")
    results[name] = np.asarray(got)


def run(results):
    import fastbp as fb
    from fastbp import ops

    print(f"fastbp from {fb.__file__}")
    rng = np.random.default_rng(0)
    for dtype in ("float32", "float64"):
        for rows in (1, 2, 3, 17, 64):
            for cols in (1, 7, 8, 16, 33):
                X = rng.standard_normal((rows, 5)).astype(dtype)
                W = rng.standard_normal((5, cols)).astype(dtype)
                b = rng.standard_normal(cols).astype(dtype)
                tag = f"{dtype} {rows}x{cols}"
                Z = X.astype(np.float64) @ W + b
                reference_checks(results, f"dense {tag}", ops.dense_forward(X, W, b), Z, dtype)
                for act in ("sigmoid", "tanh", "softmax"):
                    want = {"sigmoid": lambda z: 1 / (1 + np.exp(-z)), "tanh": np.tanh,
                            "softmax": lambda z: np.exp(z - z.max(1, keepdims=True)) / np.exp(
                                z - z.max(1, keepdims=True)).sum(1, keepdims=True)}[act](Z)
                    reference_checks(results, f"{act} {tag}", ops.dense_forward(X, W, b, act),
                                     want, dtype)
                dZ = rng.standard_normal((rows, cols)).astype(dtype)
                dX, dW, db = ops.dense_backward(X, W, dZ)
                reference_checks(results, f"dX {tag}", dX, dZ.astype(np.float64) @ W.T, dtype)
                reference_checks(results, f"dW {tag}", dW, X.T.astype(np.float64) @ dZ, dtype)
                labels = rng.integers(0, cols, rows)
                loss, grad = ops.softmax_cross_entropy(Z.astype(dtype), labels)
                logp = Z - Z.max(1, keepdims=True)
                logp -= np.log(np.exp(logp).sum(1, keepdims=True))
                reference_checks(results, f"xent {tag}", loss,
                                 -logp[np.arange(rows), labels].mean(), dtype)
                Y = (rng.random((rows, cols)) < 0.5).astype(dtype)
                loss, grad = ops.binary_crossentropy(Z.astype(dtype), Y)
                want = np.mean(np.maximum(Z, 0) - Z * Y + np.log1p(np.exp(-np.abs(Z))))
                reference_checks(results, f"bce {tag}", loss, want, dtype)
        p, g = rng.standard_normal(1000).astype(dtype), rng.standard_normal(1000).astype(dtype)
        m, v = np.zeros_like(p), np.zeros_like(p)
        p0 = p.astype(np.float64)
        ops.adam_step(p, g, m, v, 1, lr=0.01)
        g64 = g.astype(np.float64)  # step 1: m_hat = g, v_hat = g**2
        reference_checks(results, f"adam {dtype}", p, p0 - 0.01 * g64 / (np.abs(g64) + 1e-8),
                         dtype)
        # a short training run, end to end (epoch driver, every optimizer path)
        X = rng.standard_normal((200, 8))
        y = (X[:, :2].sum(1) > 0).astype(np.int64) + (X[:, 2] > 1)
        for opt in (fb.SGD(lr=0.05, momentum=0.9, nesterov=True), fb.Adam(lr=0.01),
                    fb.AdamW(lr=0.01)):
            model = fb.Sequential([fb.Dense(8, 33, activation="tanh"),
                                   fb.Dense(33, 17, activation="relu"),
                                   fb.Dense(17, 3, activation="softmax")], dtype=dtype, seed=1)
            model.compile("categorical_crossentropy", opt, metrics=["accuracy"])
            history = model.fit(X, y, epochs=5, batch_size=16, verbose=0)
            name = f"fit {type(opt).__name__} {dtype}"
            assert np.isfinite(history.history["loss"]).all(), name
            assert history.history["loss"][-1] < history.history["loss"][0], name
            results[name] = np.concatenate([w.ravel() for w in model.get_weights()])
    return results


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--write")
    parser.add_argument("--compare")
    parser.add_argument("--cpu", choices=sorted(EXPECTED_FEATURES))
    args = parser.parse_args()
    if args.cpu:
        from numpy._core._multiarray_umath import __cpu_features__ as features
        seen = {k: features.get(k) for k in EXPECTED_FEATURES[args.cpu]}
        print(f"CPU features numpy detects: {seen}")
        if seen != EXPECTED_FEATURES[args.cpu]:
            sys.exit(f"not running on an emulated {args.cpu}: expected "
                     f"{EXPECTED_FEATURES[args.cpu]}")
    from fastbp import _core

    kernel = _core._small_gemm_kernel()
    print(f"small-matrix kernel: {kernel}")
    if args.cpu and kernel != EXPECTED_SMALL_GEMM[args.cpu]:
        sys.exit(f"the small-matrix kernel on {args.cpu} is {kernel}, expected "
                 f"{EXPECTED_SMALL_GEMM[args.cpu]}")
    results = run({})
    if args.write:
        np.savez(args.write, **results)
    if args.compare:
        host = np.load(args.compare)
        worst = 0.0
        for name, value in results.items():
            dtype = "float32" if "float32" in name else "float64"
            # the training runs amplify rounding differences (FMA or not) over 65 steps
            rtol = RTOL[dtype] * (500 if name.startswith("fit") else 10)
            np.testing.assert_allclose(value, host[name], rtol=rtol, atol=rtol,
                                       err_msg=f"{name}: differs from this machine's result")
            scale = np.maximum(np.abs(host[name]), 1e-30)
            worst = max(worst, float(np.max(np.abs(value - host[name]) / scale, initial=0)))
        print(f"{len(results)} results agree with the native run "
              f"(largest relative difference {worst:.2e})")
    print(f"portable check passed: {len(results)} results")


if __name__ == "__main__":
    main()
