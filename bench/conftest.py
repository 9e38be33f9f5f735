"""pytest configuration for bench/: import fastbp from the source tree when it is built in place,
say which fastbp runs, and print the parallel-models speed-up after a timed run.

CI runs ``pytest bench --benchmark-disable -q``: every benchmark body runs once, so its
assertions are checked without timing anything."""
import sys

from _source_tree import prefer_built_source_tree

prefer_built_source_tree()


def pytest_report_header(config):
    import fastbp

    return f"fastbp {fastbp.__version__} from {fastbp.__file__}"


def pytest_terminal_summary(terminalreporter):
    module = sys.modules.get("test_bench_model")
    medians = getattr(module, "PARALLEL_MEDIANS", {})
    if "sequential" in medians and "threads" in medians:
        seq, par = medians["sequential"], medians["threads"]
        terminalreporter.write_line(
            f"parallel models: 2 tiny models one after the other {seq * 1e3:.1f} ms, in 2 "
            f"threads {par * 1e3:.1f} ms: speed-up {seq / par:.2f}x "
            "(issue 3's target: >= 1.8x on 2 cores)")
