"""The peer comparison's machinery (bench/compare_peers.py) and the peers' arithmetic.

Each peer must train exactly what the numpy loop trains, or the comparison compares different
things: one epoch from the same start on the same sample order must give the same weights.
Peers that are not installed (torch, jax) are skipped.
"""
import json
import sys

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import compare_peers
import peers
from workloads import WORKLOADS, initial_weights, make_data

# SGD+momentum, Adam + BCE, and float64 MSE (last: JAX's float64 switches x64 on for the process)
CASES = ["tiny", "binary", "regression"]
SAMPLES = 600  # 19 to 38 steps: enough to catch a wrong update rule


@pytest.fixture
def one_thread():
    """One BLAS thread (fast and deterministic, also on a busy 2-core machine)."""
    with threadpool_limits(limits=1):
        yield


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("peer", ["torch", "jax_step", "jax_scan"])
@pytest.mark.usefixtures("one_thread")
def test_peer_trains_what_the_numpy_loop_trains(peer, name):
    for module in peers.REQUIRES[peer]:
        pytest.importorskip(module)
    if peer == "torch":  # its own thread pool, process-wide; no other test here uses torch
        sys.modules["torch"].set_num_threads(1)
    workload = WORKLOADS[name]
    X, y = make_data(workload, n_samples=SAMPLES)
    order = np.random.default_rng(1).permutation(len(X))
    weights = initial_weights(workload)
    results = []
    for module in (peers.load(peer), peers.load("numpy")):
        trainer = module.Trainer(workload, X, y, weights)
        trainer.epoch(order)
        results.append(trainer.get_weights())
    tol = {"rtol": 1e-9, "atol": 1e-12} if workload.dtype == "float64" else \
        {"rtol": 1e-4, "atol": 1e-4 if workload.optimizer == "adam" else 1e-5}
    for i, (a, b) in enumerate(zip(*results)):
        assert a.dtype == np.dtype(workload.dtype), f"{peer} parameter {i} is {a.dtype}"
        np.testing.assert_allclose(a, b, **tol, err_msg=f"{peer} on {name}: parameter {i}")


def test_quick_run_prints_tables_and_writes_json(tmp_path, capsys):
    out = tmp_path / "latest.json"
    result = compare_peers.main(["--quick", "--workloads", "tiny,regression", "--threads", "1",
                                 "--peers", "fastbp,numpy", "--json", str(out)])
    printed = capsys.readouterr().out
    assert "OPENBLAS_CORETYPE" in printed and "env -u OPENBLAS_CORETYPE" in printed
    assert "Matmul ceiling" in printed and "| fastbp |" in printed and "| numpy loop |" in printed
    saved = json.loads(out.read_text())
    assert saved["runs"][0]["threads"] == 1
    assert "numpy_matmul_gflops" in saved["runs"][0]["ceiling"]
    for name in ("tiny", "regression"):
        rows = saved["runs"][0]["workloads"][name]
        assert set(rows) == {"fastbp", "numpy"}
        for row in rows.values():
            assert "error" not in row, row
            assert len(row["epoch_s"]) == compare_peers.QUICK_EPOCHS
            assert row["n_samples"] == compare_peers.QUICK_SAMPLES
        # the same start and data for every peer; both learn
        assert rows["fastbp"]["loss_start"] == rows["numpy"]["loss_start"]
        for row in rows.values():
            assert row["loss_end"] < row["loss_start"]
    assert result["runs"][0]["workloads"].keys() == {"tiny", "regression"}


def test_a_missing_peer_is_skipped_with_a_line(monkeypatch, capsys):
    monkeypatch.setitem(peers.REQUIRES, "torch", ["no_such_module_for_fastbp_bench"])
    result = compare_peers.main(["--quick", "--workloads", "binary", "--threads", "1",
                                 "--peers", "torch,numpy", "--json", ""])
    printed = capsys.readouterr().out
    assert "PyTorch eager: skipped (no_such_module_for_fastbp_bench not installed" in printed
    assert result["skipped"] == ["torch"]
    assert set(result["runs"][0]["workloads"]["binary"]) == {"numpy"}


def test_report_reprints_a_saved_run(tmp_path, capsys):
    out = tmp_path / "latest.json"
    compare_peers.main(["--quick", "--workloads", "binary", "--threads", "1", "--peers",
                        "numpy", "--json", str(out)])
    live = capsys.readouterr().out
    compare_peers.main(["--report", str(out)])
    again = capsys.readouterr().out
    table = live[live.index("| peer |"):live.index("Versions")].strip()
    assert table in again
