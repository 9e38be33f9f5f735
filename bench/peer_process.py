"""One measurement in a process of its own, with the thread count pinned before any numerical
library loads. bench/compare_peers.py starts one per (peer, workload, thread count), and one
for the matmul ceiling; each prints a single line ``RESULT {json}``.

    python bench/peer_process.py --peer torch --workload tiny --threads 1 --epochs 10
    python bench/peer_process.py --ceiling --threads 1
"""
import argparse
import json
import os
import resource
import sys
import time

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
XLA_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def thread_environment(threads, base=None):
    """The environment that pins a process to `threads` threads, set before imports."""
    env = dict(os.environ if base is None else base)
    for name in THREAD_VARIABLES:
        env[name] = str(threads)
    if threads == 1:
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " " + XLA_ONE_THREAD).strip()
    return env


def pin_process(threads):
    """Restrict this process to the first `threads` CPUs it may use (what a thread limit a
    library ignores would otherwise hide)."""
    if hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, cpus[:threads])


def limit_library_threads(threads, peer):
    """Library-level limits once the libraries are loaded: threadpoolctl for every BLAS and
    OpenMP runtime it finds (numpy's and scipy's OpenBLAS, which fastbp calls), and torch's
    intra-op pool."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)
    if peer == "torch":
        import torch

        torch.set_num_threads(threads)


def blas_info():
    """threadpoolctl's view of the loaded BLAS/OpenMP libraries, the fields that name a kernel."""
    from threadpoolctl import threadpool_info

    keys = ("user_api", "internal_api", "prefix", "version", "architecture", "threading_layer",
            "num_threads", "filepath")
    return [{k: info.get(k) for k in keys if info.get(k) is not None}
            for info in threadpool_info()]


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run_peer(args):
    import numpy as np

    import peers
    import workloads

    workload = workloads.WORKLOADS[args.workload]
    module = peers.load(args.peer)
    limit_library_threads(args.threads, args.peer)
    X, y = workloads.make_data(workload, seed=args.seed, n_samples=args.n_samples)
    weights = workloads.initial_weights(workload, seed=args.seed)
    trainer = module.Trainer(workload, X, y, weights, seed=args.seed)
    rss_before = peak_rss_mib()
    times, cpu_times = [], []
    for _ in range(1 + args.epochs):  # the first is the warm-up
        started, cpu_started = time.perf_counter(), time.process_time()
        trainer.epoch()
        times.append(time.perf_counter() - started)
        cpu_times.append(time.process_time() - cpu_started)
    final = trainer.get_weights()
    return {
        "peer": args.peer, "workload": workload.name, "threads": args.threads,
        "n_samples": len(X), "epochs": args.epochs,
        "warmup_s": times[0], "epoch_s": times[1:],
        "median_ms": 1e3 * float(np.median(times[1:])),
        "min_ms": 1e3 * min(times[1:]),
        # CPU seconds per wall second per allowed thread: well below 1 for a peer that is
        # meant to keep its threads busy means other processes took the CPU
        "cpu_use": sum(cpu_times[1:]) / sum(times[1:]) / args.threads,
        "loss_start": workloads.reference_loss(workload, weights, X, y),
        "loss_end": workloads.reference_loss(workload, final, X, y),
        "peak_rss_mib": peak_rss_mib(), "rss_after_setup_mib": rss_before,
        "versions": module.versions(), "blas": blas_info(),
    }


def run_ceiling(args):
    """numpy.matmul (and scipy's sgemm, the BLAS fastbp calls) GFLOP/s on n x n float32."""
    import numpy as np
    import scipy
    import scipy.linalg.blas as sblas

    limit_library_threads(args.threads, "numpy")
    n = args.size
    rng = np.random.default_rng(0)
    A = rng.standard_normal((n, n), dtype=np.float32)
    B = rng.standard_normal((n, n), dtype=np.float32)
    Af, Bf = np.asfortranarray(A), np.asfortranarray(B)

    def gflops(fn, repeats=3):
        fn()
        seconds = []
        for _ in range(repeats):
            started = time.perf_counter()
            fn()
            seconds.append(time.perf_counter() - started)
        return 2 * n ** 3 / float(np.median(seconds)) / 1e9

    return {
        "threads": args.threads, "size": n,
        "numpy_matmul_gflops": gflops(lambda: np.matmul(A, B)),
        "scipy_sgemm_gflops": gflops(lambda: sblas.sgemm(1.0, Af, Bf)),
        "numpy": np.__version__, "scipy": scipy.__version__,
        "numpy_blas": [b for b in blas_info() if "numpy" in b.get("filepath", "")],
        "scipy_blas": [b for b in blas_info() if "scipy" in b.get("filepath", "")
                       and "numpy" not in b.get("filepath", "")],
        "peak_rss_mib": peak_rss_mib(),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer")
    parser.add_argument("--workload")
    parser.add_argument("--ceiling", action="store_true")
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--n-samples", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    # before numpy, scipy, torch or jax load:
    os.environ.update(thread_environment(args.threads))
    pin_process(args.threads)
    here = os.path.dirname(os.path.abspath(__file__))
    if here not in sys.path:
        sys.path.insert(0, here)
    from _source_tree import prefer_built_source_tree

    prefer_built_source_tree()
    result = run_ceiling(args) if args.ceiling else run_peer(args)
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
