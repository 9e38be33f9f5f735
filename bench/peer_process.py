"""One measurement in a process of its own, with the thread count pinned before any numerical
library loads. bench/compare_peers.py starts one per peer and workload (``--serve``: it then
asks each for one epoch at a time, in turn), and one for the matmul ceiling; each ends by
printing a line ``RESULT {json}``. By hand:

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


class PeerRun:
    """One peer on one workload: set up and warm up at construction, then one epoch per call
    of ``epoch()``, then ``result()``."""

    def __init__(self, args):
        import peers
        import workloads

        self.args = args
        self.workload = workloads.WORKLOADS[args.workload]
        self.module = peers.load(args.peer)
        limit_library_threads(args.threads, args.peer)
        self.X, self.y = workloads.make_data(self.workload, seed=args.seed,
                                             n_samples=args.n_samples)
        self.weights = workloads.initial_weights(self.workload, seed=args.seed)
        self.trainer = self.module.Trainer(self.workload, self.X, self.y, self.weights,
                                           seed=args.seed)
        self.rss_after_setup = peak_rss_mib()
        self.warmup_s = self.epoch()[0]
        self.wall, self.cpu = [], []

    def epoch(self):
        """Train one epoch; (wall seconds, CPU seconds of this process)."""
        started, cpu_started = time.perf_counter(), time.process_time()
        self.trainer.epoch()
        return time.perf_counter() - started, time.process_time() - cpu_started

    def measure(self):
        wall, cpu = self.epoch()
        self.wall.append(wall)
        self.cpu.append(cpu)
        return wall, cpu

    def result(self):
        import numpy as np

        import workloads

        final = self.trainer.get_weights()
        w, args = self.workload, self.args
        return {
            "peer": args.peer, "workload": w.name, "threads": args.threads,
            "n_samples": len(self.X), "epochs": len(self.wall),
            "warmup_s": self.warmup_s, "epoch_s": self.wall, "epoch_cpu_s": self.cpu,
            "median_ms": 1e3 * float(np.median(self.wall)),
            "min_ms": 1e3 * min(self.wall),
            "median_cpu_ms": 1e3 * float(np.median(self.cpu)),
            # CPU seconds per wall second per allowed thread: well below 1 for a peer meant
            # to keep its threads busy means other processes had the CPU
            "cpu_use": sum(self.cpu) / sum(self.wall) / args.threads,
            "loss_start": workloads.reference_loss(w, self.weights, self.X, self.y),
            "loss_end": workloads.reference_loss(w, final, self.X, self.y),
            "peak_rss_mib": peak_rss_mib(), "rss_after_setup_mib": self.rss_after_setup,
            "versions": self.module.versions(), "blas": blas_info(),
        }


def serve(args):
    """The protocol compare_peers.py drives: after setup and the warm-up epoch print READY;
    for each line "epochs N" on stdin train N epochs and print "EPOCHS" and their wall
    seconds; on "done" print the RESULT line and exit."""
    run = PeerRun(args)
    print(f"READY {run.warmup_s}", flush=True)
    for line in sys.stdin:
        words = line.split()
        if words[:1] == ["epochs"]:
            walls = [run.measure()[0] for _ in range(int(words[1]))]
            print("EPOCHS " + " ".join(map(repr, walls)), flush=True)
        elif words[:1] == ["done"]:
            break
    return run.result()


def run_alone(args):
    run = PeerRun(args)
    for _ in range(args.epochs):
        run.measure()
    return run.result()


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

    def gflops(fn, repeats=5):
        """The best of `repeats` runs after a warm-up: a ceiling is a peak, and on a shared
        machine other processes only ever slow a run down."""
        fn()
        seconds = []
        for _ in range(repeats):
            started = time.perf_counter()
            fn()
            seconds.append(time.perf_counter() - started)
        return 2 * n ** 3 / min(seconds) / 1e9

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
    parser.add_argument("--serve", action="store_true", help="epochs on request (stdin)")
    args = parser.parse_args(argv)
    # before numpy, scipy, torch or jax load:
    os.environ.update(thread_environment(args.threads))
    pin_process(args.threads)
    here = os.path.dirname(os.path.abspath(__file__))
    if here not in sys.path:
        sys.path.insert(0, here)
    from _source_tree import prefer_built_source_tree

    prefer_built_source_tree()
    result = run_ceiling(args) if args.ceiling else serve(args) if args.serve else run_alone(args)
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
