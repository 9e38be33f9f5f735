"""fastbp.threads: the BLAS thread count can be read, set for the process and set for a block."""
import pytest

import fastbp as fb


def test_num_threads_sets_and_restores():
    before = fb.get_num_threads()
    with fb.num_threads(1):
        assert fb.get_num_threads() == 1
    assert fb.get_num_threads() == before


def test_num_threads_none_leaves_it_alone():
    before = fb.get_num_threads()
    with fb.num_threads(None):
        assert fb.get_num_threads() == before


def test_set_num_threads():
    before = fb.get_num_threads()
    try:
        fb.set_num_threads(1)
        assert fb.get_num_threads() == 1
    finally:
        fb.set_num_threads(before)


@pytest.mark.parametrize("bad, error", [(0, ValueError), (-2, ValueError), (1.5, TypeError),
                                        ("2", TypeError)])
def test_bad_thread_counts_are_rejected(bad, error):
    with pytest.raises(error, match="n_threads"):
        with fb.num_threads(bad):
            pass
    with pytest.raises(error, match="n_threads"):
        fb.set_num_threads(bad)


def _model(**kwargs):
    import numpy as np

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(64, 8)), rng.integers(0, 3, 64)
    model = fb.Sequential([fb.Dense(8, 16, activation="relu"), fb.Dense(16, 3)], seed=0,
                          **kwargs)
    model.compile("categorical_crossentropy", "adam")
    return model, X, y


def test_thread_count_does_not_change_results():
    import numpy as np

    results = []
    for model_threads, call_threads in [(None, None), (1, None), (None, 1), (2, 1)]:
        model, X, y = _model(n_threads=model_threads)
        model.fit(X, y, epochs=3, batch_size=8, verbose=0, n_threads=call_threads)
        results.append(model.get_weights() + [model.predict(X, n_threads=call_threads)])
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


def test_bad_n_threads_is_rejected_before_training():
    import numpy as np

    with pytest.raises(ValueError, match="n_threads"):
        fb.Sequential([fb.Dense(2, 2)], n_threads=0)
    model, X, y = _model()
    before = model.get_weights()
    with pytest.raises(ValueError, match="n_threads"):
        model.fit(X, y, epochs=1, verbose=0, n_threads=0)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    model.fit(X, y, epochs=1, verbose=0)  # the model is not left locked
