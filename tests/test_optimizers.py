"""fastbp.optimizers: defaults (torch's, except SGD's lr), lookup by name, and the update rules
as their docstrings state them, replayed in numpy on the gradients compute_gradients reports."""
import numpy as np
import pytest

import fastbp as fb
from fastbp import optimizers

DTYPES = ["float64", "float32"]


def test_sgd_defaults():
    opt = fb.SGD()
    assert (opt.lr, opt.momentum, opt.nesterov, opt.weight_decay) == (0.01, 0.0, False, 0.0)


def test_adam_defaults_are_torch_defaults():
    opt = fb.Adam()
    assert opt.lr == 1e-3 and opt.betas == (0.9, 0.999) and opt.eps == 1e-8
    assert opt.weight_decay == 0.0


def test_adamw_defaults_are_torch_defaults():
    opt = fb.AdamW()
    assert opt.lr == 1e-3 and opt.betas == (0.9, 0.999) and opt.eps == 1e-8
    assert opt.weight_decay == 0.01
    assert fb.AdamW(weight_decay=0).weight_decay == 0.0  # an explicit 0 is kept
    assert isinstance(opt, fb.Adam)


def test_hyper_parameters_become_floats():
    opt = fb.Adam(lr=1, betas=[0, 0], eps=1, weight_decay=0)
    assert all(type(v) is float for v in (opt.lr, *opt.betas, opt.eps, opt.weight_decay))
    assert opt.betas == (0.0, 0.0)
    assert type(fb.SGD(lr=np.float32(0.5)).lr) is float


@pytest.mark.parametrize("name,cls", [("sgd", fb.SGD), ("SGD", fb.SGD), ("adam", fb.Adam),
                                      ("Adam", fb.Adam), ("adamw", fb.AdamW),
                                      ("AdamW", fb.AdamW)])
def test_lookup_by_name_gives_defaults(name, cls):
    opt = optimizers.get(name)
    assert type(opt) is cls
    assert opt.get_config() == cls().get_config()


def test_instance_passes_through():
    opt = fb.SGD(lr=0.3)
    assert optimizers.get(opt) is opt


@pytest.mark.parametrize("bad", ["rmsprop", "", None, fb.Adam])
def test_unknown_optimizer(bad):
    with pytest.raises(ValueError, match=r"optimizer must be an Optimizer or one of "
                                         r"\['adam', 'adamw', 'sgd'\], got"):
        optimizers.get(bad)


def test_config_and_repr():
    opt = fb.SGD(lr=0.1, momentum=0.9, nesterov=True)
    assert opt.get_config() == dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.0)
    assert repr(opt) == "SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.0)"
    assert repr(fb.AdamW()) == "AdamW(lr=0.001, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.01)"


# ---- update rules --------------------------------------------------------------------------
def problem(dtype, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(12, 3)).astype(dtype)
    y = rng.integers(0, 3, size=12)
    model = fb.Sequential([fb.Dense(3, 4, activation="tanh"),
                           fb.Dense(4, 3, activation="softmax")], dtype=dtype, seed=seed)
    model.set_weights([w + 0.1 for w in model.get_weights()])  # nonzero biases: decay shows
    return model, X, y


def full_batch_fit(model, X, y, optimizer, steps):
    model.compile(loss="categorical_crossentropy", optimizer=optimizer)
    model.fit(X, y, epochs=steps, batch_size=len(X), shuffle=False, verbose=0)
    assert model._network.step == steps


def replay(model, X, y, steps, update):
    """Full-batch steps with update(t, params, grads, state) written in numpy."""
    model.compile(loss="categorical_crossentropy", optimizer="sgd")  # only for gradients
    state = {}
    for t in range(1, steps + 1):
        _, grads = model.compute_gradients(X, y)
        model.set_weights(update(t, model.get_weights(), grads, state))


def adam_update(lr, beta1, beta2, eps, weight_decay, decoupled):
    """The pseudo-code of Adam's / AdamW's docstring, in double precision."""
    def update(t, params, grads, state):
        new = []
        for i, (p, g) in enumerate(zip(params, grads)):
            p, g = p.astype(np.float64), g.astype(np.float64)
            if decoupled:
                p = p * (1 - lr * weight_decay)
            else:
                g = g + weight_decay * p
            m = state[("m", i)] = beta1 * state.get(("m", i), 0) + (1 - beta1) * g
            v = state[("v", i)] = beta2 * state.get(("v", i), 0) + (1 - beta2) * g * g
            new.append(p - lr / (1 - beta1 ** t) * m / (np.sqrt(v) / np.sqrt(1 - beta2 ** t)
                                                         + eps))
        return new
    return update


def sgd_update(lr, momentum, nesterov, weight_decay):
    """The pseudo-code of SGD's docstring, in double precision."""
    def update(t, params, grads, state):
        new = []
        for i, (p, g) in enumerate(zip(params, grads)):
            p, g = p.astype(np.float64), g.astype(np.float64)
            g = g + weight_decay * p
            if momentum:
                v = state[i] = momentum * state[i] + g if t > 1 else g
                g = g + momentum * v if nesterov else v
            new.append(p - lr * g)
        return new
    return update


OPTIMIZERS = {
    "sgd": (lambda: fb.SGD(lr=0.3), sgd_update(0.3, 0, False, 0)),
    "sgd-wd": (lambda: fb.SGD(lr=0.3, weight_decay=0.1), sgd_update(0.3, 0, False, 0.1)),
    "momentum": (lambda: fb.SGD(lr=0.3, momentum=0.9), sgd_update(0.3, 0.9, False, 0)),
    "nesterov": (lambda: fb.SGD(lr=0.3, momentum=0.9, nesterov=True, weight_decay=0.05),
                 sgd_update(0.3, 0.9, True, 0.05)),
    "adam": (lambda: fb.Adam(lr=0.05), adam_update(0.05, 0.9, 0.999, 1e-8, 0, False)),
    "adam-l2": (lambda: fb.Adam(lr=0.05, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
                adam_update(0.05, 0.8, 0.99, 1e-6, 0.1, False)),
    "adamw": (lambda: fb.AdamW(lr=0.05, weight_decay=0.1),
              adam_update(0.05, 0.9, 0.999, 1e-8, 0.1, True)),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_update_rule_matches_docstring(name, dtype):
    make, update = OPTIMIZERS[name]
    model, X, y = problem(dtype)
    reference, _, _ = problem(dtype)
    full_batch_fit(model, X, y, make(), steps=4)
    replay(reference, X, y, steps=4, update=update)
    rtol, atol = (1e-12, 1e-14) if dtype == "float64" else (2e-5, 1e-6)
    start = problem(dtype)[0].get_weights()
    for w, r, s in zip(model.get_weights(), reference.get_weights(), start):
        assert not np.allclose(w, s)  # the parameters moved
        np.testing.assert_allclose(w, r, rtol=rtol, atol=atol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_first_adam_step_moves_each_parameter_by_lr(dtype):
    """At t = 1 the bias-corrected moments are g and g**2, so every parameter moves by
    lr * g / (|g| + eps) = lr * sign(g) (for |g| >> eps)."""
    model, X, y = problem(dtype)
    start = model.get_weights()
    model.compile(loss="categorical_crossentropy", optimizer="sgd")
    _, grads = model.compute_gradients(X, y)
    full_batch_fit(model, X, y, fb.Adam(lr=0.01), steps=1)
    for w, s, g in zip(model.get_weights(), start, grads):
        big = np.abs(g) > 1e-4
        assert big.sum() >= g.size // 2
        np.testing.assert_allclose((w - s)[big], -0.01 * np.sign(g[big]), rtol=1e-3)


@pytest.mark.parametrize("dtype", DTYPES)
def test_adamw_decay_is_decoupled(dtype):
    """AdamW's first step is Adam's plus the shrink p * lr * weight_decay; Adam with the same
    weight_decay adds it to the gradient instead, which the sign normalisation mostly hides."""
    a, X, y = problem(dtype)
    w, _, _ = problem(dtype)
    start = a.get_weights()
    full_batch_fit(a, X, y, fb.Adam(lr=0.01, weight_decay=0), steps=1)
    full_batch_fit(w, X, y, fb.AdamW(lr=0.01, weight_decay=0.5), steps=1)
    for pa, pw, s in zip(a.get_weights(), w.get_weights(), start):
        np.testing.assert_allclose(pw - pa, -0.01 * 0.5 * s, rtol=1e-3, atol=1e-6)


def test_one_optimizer_object_serves_two_models():
    """The optimizer holds hyper-parameters only; each model keeps its own state."""
    shared = fb.Adam(lr=0.05)
    a, X, y = problem("float64")
    b, _, _ = problem("float64")
    c, _, _ = problem("float64")
    a.compile(loss="categorical_crossentropy", optimizer=shared)
    b.compile(loss="categorical_crossentropy", optimizer=shared)
    c.compile(loss="categorical_crossentropy", optimizer=fb.Adam(lr=0.05))
    a.fit(X, y, epochs=5, shuffle=False, verbose=0)  # a's steps must not touch b's state
    b.fit(X, y, epochs=2, shuffle=False, verbose=0)
    c.fit(X, y, epochs=2, shuffle=False, verbose=0)
    assert b._network.step == 2 and a._network.step == 5
    for wb, wc in zip(b.get_weights(), c.get_weights()):
        np.testing.assert_array_equal(wb, wc)


def test_recompiling_with_another_optimizer_switches_the_rule():
    model, X, y = problem("float64")
    model.compile(loss="categorical_crossentropy", optimizer="adam")
    model.fit(X, y, epochs=3, verbose=0)
    reference, _, _ = problem("float64")
    reference.set_weights(model.get_weights())
    full_batch_fit(model, X, y, fb.SGD(lr=0.3), steps=2)
    replay(reference, X, y, steps=2, update=sgd_update(0.3, 0, False, 0))
    for w, r in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(w, r, rtol=1e-12, atol=1e-14)


def test_hyper_parameter_changed_after_construction_is_checked():
    model, X, y = problem("float64")
    model.compile(loss="categorical_crossentropy", optimizer=fb.SGD(lr=0.1))
    try:
        model.optimizer.lr = -5.0
    except (AttributeError, TypeError, ValueError):
        return  # read-only / validated attributes are a fix too
    with pytest.raises(ValueError, match=r"lr must be in \(0, inf\]"):
        model.fit(X, y, epochs=1, verbose=0)
