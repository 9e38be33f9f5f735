"""Train the same networks on the same data with fastbp and its peers, and print one table per
workload (issue 3).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/compare_peers.py --threads 1,2

Every peer starts from the same seeded weights on the same seeded synthetic data, with the same
optimizer and batch size, and trains the same number of epochs in a process of its own with
the thread count pinned (bench/peer_process.py). The processes of one workload are started
and warmed up together, then take turns, one at a time, a few epochs per turn, so that the
machine's background load (a shared machine) falls on every peer alike. Reported per peer: the median wall time of an
epoch after one warm-up epoch, that time divided by fastbp's, GFLOP/s counted as
6 x weights x samples per epoch, the process's peak resident memory, the loss before and after
training (one numpy formula for all peers: they should agree to a few digits), the CPU use
(CPU seconds per wall second per allowed thread; well below 1 at 1 thread means other
processes took the CPU and the row is noisy) and the median CPU time of an epoch (at 1
thread the figure least disturbed by other processes). Also the machine's matmul ceiling
(numpy.matmul on 4096 x 4096 float32, best of 5, and scipy's sgemm, the BLAS fastbp calls) at
the same thread count, with the BLAS kernels that ran. Results go to
bench/results/latest.json as well.
"""
import argparse
import datetime
import json
import os
import pathlib
import platform
import shlex
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import peers  # noqa: E402
import workloads  # noqa: E402
from _source_tree import prefer_built_source_tree  # noqa: E402
from peer_process import thread_environment  # noqa: E402

prefer_built_source_tree()  # so that a fastbp built in place counts as installed

BENCH = pathlib.Path(__file__).resolve().parent
INSTALL_HINT = {"torch": "pip install torch==2.13.0", "jax": "pip install jax jaxlib optax",
                "jaxlib": "pip install jax jaxlib optax", "optax": "pip install jax jaxlib optax",
                "fastbp": "python setup.py build_ext --inplace"}
OPENBLAS_NOTE = ("Note: OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE must be unset for benchmarking "
                 "(they make OpenBLAS pick slower kernels): run as "
                 "`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/compare_peers.py ...`.")
QUICK_SAMPLES, QUICK_EPOCHS, QUICK_CEILING = 256, 2, 512


def child_command(threads, args):
    return [sys.executable, str(BENCH / "peer_process.py"), "--threads", str(threads)] + args


def run_child(args, threads, timeout):
    """Run bench/peer_process.py with `args` to its end; its result dict, or {"error": ...}."""
    try:
        done = subprocess.run(child_command(threads, args), env=thread_environment(threads),
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    last = (done.stderr.strip().splitlines() or ["no output"])[-1]
    return {"error": f"exit code {done.returncode}: {last}"}


class Child:
    """A peer process in --serve mode: set up and warmed up on start, then one epoch per
    request. Its stderr goes to a temporary file (read on failure); a timer kills it at
    the deadline."""

    def __init__(self, threads, args, timeout):
        self.log = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen(child_command(threads, args + ["--serve"]),
                                        env=thread_environment(threads), text=True, bufsize=1,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=self.log)
        self.timer = threading.Timer(timeout, self.process.kill)
        self.timer.start()
        self.error = None

    def expect(self, prefix):
        """The rest of the next line that starts with `prefix` (other lines are skipped)."""
        for line in self.process.stdout:
            if line.startswith(prefix):
                return line[len(prefix):].strip()
        self.process.wait()
        self.log.seek(0)
        last = (self.log.read().strip().splitlines() or ["no output"])[-1]
        self.error = f"exit code {self.process.returncode}: {last}"
        return None

    def send(self, command):
        try:
            self.process.stdin.write(command + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            pass

    def close(self):
        self.timer.cancel()
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.log.close()


ROUNDS = 5  # turns each peer gets; its epochs are split over them
PAUSE = 0.2  # seconds between turns with threads > 1: idle BLAS/OpenMP workers spin a while


def measure_workload(workload, peer_names, threads, epochs, extra_args, timeout):
    """Each peer in its own process, all started and warmed up first; then in turns, one
    peer at a time (rotating who goes first), a few epochs per turn, so that a change in the
    machine's background load falls on every peer alike. Returns peer -> result dict (or
    {"error": ...})."""
    children = {peer: Child(threads, ["--peer", peer, "--workload", workload.name]
                            + extra_args, timeout) for peer in peer_names}
    try:
        ready = [peer for peer, child in children.items() if child.expect("READY ") is not None]
        rounds = min(ROUNDS, epochs)
        for turn in range(rounds):
            count = epochs // rounds + (turn < epochs % rounds)
            shift = turn % len(ready) if ready else 0
            for peer in ready[shift:] + ready[:shift]:
                if threads > 1:
                    time.sleep(PAUSE)
                children[peer].send(f"epochs {count}")
                children[peer].expect("EPOCHS ")
        rows = {}
        for peer, child in children.items():
            if child.error is None:
                child.send("done")
                line = child.expect("RESULT ")
                if line is not None:
                    rows[peer] = json.loads(line)
            if child.error is not None:
                rows[peer] = {"error": child.error}
        return rows
    finally:
        for child in children.values():
            child.close()


def describe_blas(infos):
    return "; ".join(
        f"{b.get('internal_api', b.get('user_api'))} {b.get('version', '?')} "
        f"kernel {b.get('architecture', b.get('threading_layer', '?'))}, "
        f"{b.get('num_threads')} thread(s) ({b.get('prefix', '')})" for b in infos) or "none found"


def gflop_per_s(workload, r):
    """6 x weights x samples of one epoch over the median epoch time."""
    return 6 * workload.n_weights * r["n_samples"] / (r["median_ms"] / 1e3) / 1e9


def format_table(workload, rows, ceiling=None):
    """A markdown table of one workload's results (rows: peer -> result dict)."""
    base = rows.get("fastbp", {}).get("median_ms")
    lines = ["| peer | ms/epoch (median) | time ÷ fastbp | GFLOP/s | peak RSS MiB "
             "| loss start → end | CPU use | CPU ms/epoch |",
             "|---|---:|---:|---:|---:|---|---:|---:|"]
    for peer, r in rows.items():
        name = peers.PEERS[peer][1]
        if "error" in r:
            lines.append(f"| {name} | failed: {r['error']} | | | | | | |")
            continue
        gflops = gflop_per_s(workload, r)
        ratio = f"{r['median_ms'] / base:.2f}" if base else "–"
        lines.append(f"| {name} | {r['median_ms']:.3f} | {ratio} | {gflops:.2f} "
                     f"| {r['peak_rss_mib']:.0f} | {r['loss_start']:.4f} → {r['loss_end']:.4f} "
                     f"| {r['cpu_use']:.2f} | {r.get('median_cpu_ms', float('nan')):.3f} |")
    if ceiling and workload.name == "large" and base:
        fastbp_gflops = gflop_per_s(workload, rows["fastbp"])
        lines.append(f"\nfastbp reaches {fastbp_gflops / ceiling['numpy_matmul_gflops']:.0%} "
                     f"of the numpy.matmul ceiling ({ceiling['numpy_matmul_gflops']:.1f} GFLOP/s).")
    return "\n".join(lines)


TARGETS_NOTE = ("Targets of issue 3 (1 thread unless said; ratio = fastbp time ÷ peer time, "
                "so < 1 means fastbp is faster)")


def check_targets(runs):
    """The issue's targets against the measured runs: a list of (target, measured, met)."""
    by_threads = {run["threads"]: run for run in runs}
    checks = []

    def ms(run, workload, peer):
        r = run["workloads"].get(workload, {}).get(peer, {})
        return r.get("median_ms")

    for threads, run in sorted(by_threads.items()):
        tag = f"{threads} thread{'s' if threads > 1 else ''}"
        for name in run["workloads"]:
            f, scan, torch = (ms(run, name, p) for p in ("fastbp", "jax_scan", "torch"))
            if f and scan:
                limit = 0.5 if name in ("tiny", "online", "binary") else 1.0
                checks.append((f"{name}, {tag}: fastbp ÷ JAX scan ≤ {limit}",
                               f"{f / scan:.2f}", f / scan <= limit))
            others = [ms(run, name, p) for p in run["workloads"][name] if p != "fastbp"]
            others = [o for o in others if o]
            if f and others:
                checks.append((f"{name}, {tag}: fastest of all peers", f"{f / min(others):.2f}",
                               f <= min(others)))
            if f and torch and name in ("tiny", "binary", "online"):
                need = 30 if name == "online" else 10
                checks.append((f"{name}, {tag}: PyTorch eager ÷ fastbp ≥ {need}",
                               f"{torch / f:.1f}", torch / f >= need))
        f = ms(run, "large", "fastbp")
        if f and run.get("ceiling") and "error" not in run["ceiling"] \
                and run["quick"] is False:
            share = gflop_per_s(workloads.WORKLOADS["large"], run["workloads"]["large"]["fastbp"]) \
                / run["ceiling"]["numpy_matmul_gflops"]
            checks.append((f"large, {tag}: ≥ 88% of the matmul ceiling", f"{share:.0%}",
                           share >= 0.88))
    if 1 in by_threads and 2 in by_threads:
        for name in ("medium", "large"):
            one, two = ms(by_threads[1], name, "fastbp"), ms(by_threads[2], name, "fastbp")
            if one and two:
                checks.append((f"{name}: fastbp 2 threads faster than 1", f"{one / two:.2f}×",
                               two < one))
    return checks


def machine():
    info = {"python": platform.python_version(), "platform": platform.platform(),
            "cpus": os.cpu_count(), "load_average": os.getloadavg()}
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        info["git"] = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=BENCH,
                                     capture_output=True, text=True).stdout.strip()
    except OSError:
        pass
    info["openblas_env"] = {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE",
                                                           "OPENBLAS_L2_SIZE")}
    return info


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workloads", default=",".join(workloads.WORKLOADS),
                        help="comma-separated, from: " + ",".join(workloads.WORKLOADS))
    parser.add_argument("--peers", default=",".join(peers.PEERS),
                        help="comma-separated, from: " + ",".join(peers.PEERS))
    parser.add_argument("--threads", default="1,2", help="thread counts, e.g. 1,2")
    parser.add_argument("--epochs", type=int, default=None,
                        help="measured epochs per peer (after one warm-up epoch); "
                             "default per workload")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_EPOCHS} epochs on {QUICK_SAMPLES} samples, a "
                             f"{QUICK_CEILING}-square ceiling: checks the machinery, not speed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per peer process")
    parser.add_argument("--json", default=str(BENCH / "results" / "latest.json"),
                        help="where to write the results ('' for nowhere)")
    parser.add_argument("--report", metavar="JSON",
                        help="print the tables of a saved run (e.g. bench/results/latest.json) "
                             "and exit")
    args = parser.parse_args(argv)
    if args.report:
        return report(args.report)
    chosen = workloads.select(args.workloads)
    peer_names = [p.strip() for p in args.peers.split(",") if p.strip()]
    unknown = [p for p in peer_names if p not in peers.PEERS]
    if unknown:
        parser.error(f"unknown peer(s) {unknown}; choose from {list(peers.PEERS)}")
    thread_counts = [int(t) for t in args.threads.split(",")]

    print(OPENBLAS_NOTE)
    info = machine()
    set_now = {k: v for k, v in info["openblas_env"].items() if v is not None}
    if set_now:
        print(f"WARNING: set in this run: {set_now}; these numbers understate numpy and scipy.")
    print(f"Machine: {info.get('cpu', '?')}, {info['cpus']} CPUs, Python {info['python']}, "
          f"load average {info['load_average'][0]:.2f} at start, git {info.get('git', '?')}")
    available = {}
    for peer in peer_names:
        lacking = peers.missing(peer)
        if lacking:
            hints = sorted({INSTALL_HINT.get(m, f"pip install {m}") for m in lacking})
            print(f"- {peers.PEERS[peer][1]}: skipped ({', '.join(lacking)} not installed: "
                  f"{'; '.join(hints)})")
        else:
            available[peer] = True
    command = "python bench/compare_peers.py " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    if not set_now:
        command = "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE " + command
    result = {"command": command,
        "date": datetime.datetime.now().isoformat(timespec="seconds"), "machine": info,
        "skipped": [p for p in peer_names if p not in available], "runs": []}

    for threads in thread_counts:
        print(f"\n## {threads} thread{'s' if threads > 1 else ''}\n")
        size = QUICK_CEILING if args.quick else 4096
        ceiling = run_child(["--ceiling", "--size", str(size)], threads, args.timeout)
        run = {"threads": threads, "quick": args.quick, "ceiling": ceiling, "workloads": {}}
        result["runs"].append(run)
        print(format_ceiling(ceiling))
        for workload in chosen:
            epochs = args.epochs or (QUICK_EPOCHS if args.quick else workload.epochs)
            n_samples = min(QUICK_SAMPLES, workload.n_samples) if args.quick else None
            extra = ["--seed", str(args.seed)] + (["--n-samples", str(n_samples)]
                                                  if n_samples else [])
            rows = measure_workload(workload, list(available), threads, epochs, extra,
                                    args.timeout)
            run["workloads"][workload.name] = rows
            print(format_heading(workload, epochs, n_samples))
            print(format_table(workload, rows, None if "error" in ceiling else ceiling),
                  flush=True)
            write_json(args.json, result)
    versions = {}
    for run in result["runs"]:
        for rows in run["workloads"].values():
            for r in rows.values():
                versions.update(r.get("versions", {}))
    versions.pop("fastbp_path", None)
    result["versions"] = versions
    print("\nVersions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    checks = check_targets(result["runs"])
    result["targets"] = [{"target": t, "measured": m, "met": bool(ok)} for t, m, ok in checks]
    print(format_targets(checks))
    result["machine"]["load_average_end"] = os.getloadavg()
    print(f"\nLoad average at the end: {result['machine']['load_average_end'][0]:.2f}")
    write_json(args.json, result)
    return result


def format_ceiling(ceiling):
    if "error" in ceiling:
        return f"matmul ceiling: failed: {ceiling['error']}"
    size = ceiling["size"]
    return "\n".join([
        f"Matmul ceiling ({size}×{size} float32, best of 5): numpy.matmul "
        f"{ceiling['numpy_matmul_gflops']:.1f} GFLOP/s, scipy sgemm "
        f"{ceiling['scipy_sgemm_gflops']:.1f} GFLOP/s",
        f"- numpy {ceiling['numpy']} BLAS: {describe_blas(ceiling['numpy_blas'])}",
        f"- scipy {ceiling['scipy']} BLAS (fastbp's): {describe_blas(ceiling['scipy_blas'])}"])


def format_heading(workload, epochs, n_samples=None):
    return (f"\n### {workload.describe()}"
            + (f" (quick: {n_samples} samples)" if n_samples else "")
            + f"; {epochs} epochs after 1 warm-up\n")


def format_targets(checks):
    if not checks:
        return ""
    lines = [f"\n{TARGETS_NOTE}:\n", "| target | measured | met |", "|---|---:|---|"]
    lines += [f"| {t} | {m} | {'yes' if ok else 'NO'} |" for t, m, ok in checks]
    return "\n".join(lines)


def report(path):
    """Print the tables of a saved run (for the README) without measuring anything."""
    result = json.loads(pathlib.Path(path).read_text())
    m = result["machine"]
    print(f"`{result['command']}` on {result['date']}: {m.get('cpu', '?')}, {m['cpus']} CPUs, "
          f"git {m.get('git', '?')}, load average {m['load_average'][0]:.2f} at start and "
          f"{m.get('load_average_end', [float('nan')])[0]:.2f} at the end")
    for run in result["runs"]:
        print(f"\n## {run['threads']} thread{'s' if run['threads'] > 1 else ''}\n")
        print(format_ceiling(run["ceiling"]))
        for name, rows in run["workloads"].items():
            workload = workloads.WORKLOADS[name]
            some = next((r for r in rows.values() if "error" not in r), {})
            n = some.get("n_samples", workload.n_samples)
            print(format_heading(workload, some.get("epochs", "?"),
                                 n if n != workload.n_samples else None))
            print(format_table(workload, rows, run["ceiling"]
                               if "error" not in run["ceiling"] else None))
    print("\nVersions: " + ", ".join(f"{k} {v}" for k, v in result.get("versions", {}).items()))
    print(format_targets([(t["target"], t["measured"], t["met"])
                          for t in result.get("targets", [])]))


def write_json(path, result):
    if not path:
        return
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1, default=float) + "\n")


if __name__ == "__main__":
    main()
