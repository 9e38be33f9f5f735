"""Generate ``torch_reference.npz``: PyTorch reference values for fastbp's tests.

Run from the repository root:

    pip install torch==2.13.0 && python tests/reference/make_torch_reference.py

PyTorch is NOT needed to run the tests: they only read the committed
``tests/reference/torch_reference.npz``.  This script is kept so the fixture
can be inspected and regenerated.

Conventions (ours, not torch's):

* Layer ``l`` has a weight ``W_l`` of shape ``(in, out)`` and a bias ``b_l`` of
  shape ``(out,)``.  Forward: ``Z_l = A_{l-1} @ W_l + b_l``, ``A_l = act_l(Z_l)``.
  In torch terms ``nn.Linear.weight == W_l.T``.
* "output" is ``A_L``, the last layer's declared activation applied to ``Z_L``.
* "mse" is ``nn.MSELoss()`` on ``A_L``; "binary_crossentropy" is
  ``nn.BCEWithLogitsLoss()`` on ``Z_L``; "categorical_crossentropy" is
  ``nn.CrossEntropyLoss()`` on ``Z_L`` (class indices or one-hot rows).
  All use mean reduction.
* Data come from numpy's default_rng(SEED), drawn in float64: X ~ N(0, 1),
  weights normal with variance 1/in, biases normal with std 0.1.  The float32
  fixtures use the same values rounded to float32.  Index targets are int64.
* Optimizers are torch.optim.SGD / Adam / AdamW with foreach=False; every step
  is zero_grad, forward on the full batch, backward, step.

Key layout, for every case and dtype in ("float32", "float64"), prefix
``"{case}/{dtype}/"``:

    X, y, W0, b0, W1, b1, ...        inputs, targets, initial parameters
    output, loss                     forward output A_L and the mean loss (0-d)
    dW0, db0, dW1, db1, ...          gradients of the loss, dW in (in, out) layout
    {opt}/W0, {opt}/b0, ...          parameters after 3 full-batch steps of {opt}

plus ``"__meta__"``: a 0-d unicode array holding a JSON description of the
cases and optimizers (load with ``json.loads(str(data["__meta__"]))``).
"""

import json
import os

import numpy as np
import torch
from torch import nn

TORCH_VERSION = "2.13.0"
SEED = 20240611
STEPS = 3
DTYPES = ("float32", "float64")
LEAKY_SLOPE = 0.01
KINKED = ("relu", "leaky_relu")
# Pre-activations Z of relu / leaky_relu units must stay away from 0, so that
# float32, float64 and the implementation under test all agree on which side
# of the kink every sample is.  The initial draw is redrawn below DRAW_MARGIN;
# during the optimizer steps |Z| must stay above STEP_MARGIN, far above the
# float32 rounding error of Z (~1e-6).
DRAW_MARGIN = 1e-3
STEP_MARGIN = 1e-5

OUT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_reference.npz")

CASES = [
    {"name": "tanh_softmax_cce_indices", "sizes": [4, 5, 3],
     "activations": ["tanh", "softmax"],
     "loss": "categorical_crossentropy", "targets": "indices", "batch": 6},
    {"name": "deep_relu_cce_onehot", "sizes": [6, 8, 7, 5, 4],
     "activations": ["relu", "leaky_relu", "sigmoid", "identity"],
     "loss": "categorical_crossentropy", "targets": "onehot", "batch": 7},
    {"name": "deep_mixed_mse", "sizes": [5, 7, 6, 4, 2],
     "activations": ["leaky_relu", "tanh", "relu", "identity"],
     "loss": "mse", "targets": "float", "batch": 8},
    {"name": "sigmoid_mse", "sizes": [3, 4, 2],
     "activations": ["relu", "sigmoid"],
     "loss": "mse", "targets": "float", "batch": 5},
    {"name": "softmax_mse", "sizes": [3, 4, 3],
     "activations": ["tanh", "softmax"],
     "loss": "mse", "targets": "float", "batch": 5},
    {"name": "bce_single", "sizes": [4, 6, 1],
     "activations": ["relu", "sigmoid"],
     "loss": "binary_crossentropy", "targets": "float", "batch": 8},
    {"name": "deep_bce_multilabel", "sizes": [5, 6, 6, 3],
     "activations": ["tanh", "relu", "identity"],
     "loss": "binary_crossentropy", "targets": "float", "batch": 6},
]

OPTIMIZERS = {
    "sgd": {"kind": "sgd", "lr": 0.1, "momentum": 0.0,
            "nesterov": False, "weight_decay": 0.0},
    "sgd_momentum": {"kind": "sgd", "lr": 0.1, "momentum": 0.9,
                     "nesterov": False, "weight_decay": 0.0},
    "nesterov": {"kind": "sgd", "lr": 0.1, "momentum": 0.9,
                 "nesterov": True, "weight_decay": 0.01},
    "sgd_wd": {"kind": "sgd", "lr": 0.1, "momentum": 0.0,
               "nesterov": False, "weight_decay": 0.05},
    "adam": {"kind": "adam", "lr": 0.01, "betas": [0.9, 0.999],
             "eps": 1e-8, "weight_decay": 0.0},
    "adam_wd": {"kind": "adam", "lr": 0.01, "betas": [0.8, 0.99],
                "eps": 1e-7, "weight_decay": 0.1},
    "adamw": {"kind": "adamw", "lr": 0.01, "betas": [0.9, 0.999],
              "eps": 1e-8, "weight_decay": 0.1},
}


# ---------------------------------------------------------------- data (numpy)

def draw_params(rng, sizes):
    """Weights: normal, mean 0, variance 1/in, (in, out) layout.
    Biases: normal, mean 0, standard deviation 0.1."""
    weights, biases = [], []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        weights.append(rng.normal(0.0, np.sqrt(1.0 / n_in), size=(n_in, n_out)))
        biases.append(rng.normal(0.0, 0.1, size=(n_out,)))
    return weights, biases


def draw_targets(rng, case):
    batch, k = case["batch"], case["sizes"][-1]
    if case["targets"] == "indices":
        return rng.integers(0, k, size=batch).astype(np.int64)
    if case["targets"] == "onehot":
        return np.eye(k)[rng.integers(0, k, size=batch)]
    if case["loss"] == "binary_crossentropy":
        y = rng.integers(0, 2, size=(batch, k)).astype(np.float64)
        if k > 1:  # multilabel: replace about half of the entries by soft labels
            soft = rng.random((batch, k)) < 0.5
            y[soft] = rng.uniform(0.0, 1.0, size=soft.sum())
        return y
    if case["activations"][-1] in ("sigmoid", "softmax"):
        return rng.uniform(0.0, 1.0, size=(batch, k))
    return rng.normal(0.0, 1.0, size=(batch, k))


def numpy_preactivations(X, weights, biases, activations):
    """Z_l of every layer in float64 numpy (used only to vet the draw)."""
    zs, a = [], X
    for W, b, act in zip(weights, biases, activations):
        z = a @ W + b
        zs.append(z)
        if act == "relu":
            a = np.maximum(z, 0.0)
        elif act == "leaky_relu":
            a = np.where(z > 0, z, LEAKY_SLOPE * z)
        elif act == "sigmoid":
            a = 1.0 / (1.0 + np.exp(-z))
        elif act == "tanh":
            a = np.tanh(z)
        elif act == "softmax":
            e = np.exp(z - z.max(axis=-1, keepdims=True))
            a = e / e.sum(axis=-1, keepdims=True)
        else:
            a = z
    return zs


def draw_is_good(case, X, y, weights, biases):
    """No dead relu unit, both kink sides used, no Z too close to a kink,
    and targets that are not degenerate."""
    zs = numpy_preactivations(X, weights, biases, case["activations"])
    for z, act in zip(zs, case["activations"]):
        if act not in KINKED:
            continue
        if not (z > 0).any(axis=0).all():  # some unit never active: dead
            return False
        if not (z < 0).any():
            return False
        if np.abs(z).min() < DRAW_MARGIN:
            return False
    if case["targets"] == "indices" and len(np.unique(y)) < 2:
        return False
    if case["loss"] == "binary_crossentropy" and len(np.unique(y)) < 2:
        return False
    return True


def draw_case(rng, case):
    """Draw X, y, weights, biases (float64) until draw_is_good accepts them."""
    for _ in range(1000):
        X = rng.normal(0.0, 1.0, size=(case["batch"], case["sizes"][0]))
        y = draw_targets(rng, case)
        weights, biases = draw_params(rng, case["sizes"])
        if draw_is_good(case, X, y, weights, biases):
            return X, y, weights, biases
    raise RuntimeError("could not draw good data for " + case["name"])


# ----------------------------------------------------------------- torch model

def make_activation(name):
    if name == "identity":
        return nn.Identity()
    if name == "relu":
        return nn.ReLU()
    if name == "leaky_relu":
        return nn.LeakyReLU(negative_slope=LEAKY_SLOPE)
    if name == "sigmoid":
        return nn.Sigmoid()
    if name == "tanh":
        return nn.Tanh()
    if name == "softmax":
        return nn.Softmax(dim=-1)
    raise ValueError(name)


def make_linears(weights, biases, dtype):
    """nn.Linear layers holding our (in, out) weights as torch's (out, in)."""
    linears = []
    for W, b in zip(weights, biases):
        n_in, n_out = W.shape
        layer = nn.Linear(n_in, n_out, dtype=dtype)
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(W.T.copy()))
            layer.bias.copy_(torch.from_numpy(b.copy()))
        linears.append(layer)
    return linears


def forward(linears, activations, X):
    """Return (Z_L, A_L) and check the kink margin of relu-type layers."""
    a = X
    for layer, act in zip(linears, activations):
        z = layer(a)
        if act in KINKED:
            closest = z.detach().abs().min().item()
            assert closest > STEP_MARGIN, f"{act} input {closest} too close to 0"
        a = make_activation(act)(z)
    return z, a


def compute_loss(case, logits, output, y):
    if case["loss"] == "mse":
        return nn.MSELoss()(output, y)
    if case["loss"] == "binary_crossentropy":
        assert case["activations"][-1] in ("sigmoid", "identity")
        return nn.BCEWithLogitsLoss()(logits, y)
    if case["loss"] == "categorical_crossentropy":
        assert case["activations"][-1] in ("softmax", "identity")
        return nn.CrossEntropyLoss()(logits, y)
    raise ValueError(case["loss"])


def make_optimizer(config, params):
    if config["kind"] == "sgd":
        return torch.optim.SGD(params, lr=config["lr"], momentum=config["momentum"],
                               nesterov=config["nesterov"],
                               weight_decay=config["weight_decay"], foreach=False)
    if config["kind"] == "adam":
        return torch.optim.Adam(params, lr=config["lr"], betas=tuple(config["betas"]),
                                eps=config["eps"],
                                weight_decay=config["weight_decay"], foreach=False)
    if config["kind"] == "adamw":
        return torch.optim.AdamW(params, lr=config["lr"], betas=tuple(config["betas"]),
                                 eps=config["eps"],
                                 weight_decay=config["weight_decay"], foreach=False)
    raise ValueError(config["kind"])


def parameters(linears):
    params = []
    for layer in linears:
        params += [layer.weight, layer.bias]
    return params


def params_to_numpy(linears):
    """(W0, b0, W1, b1, ...) as numpy, W in our (in, out) layout."""
    out = []
    for layer in linears:
        out.append(layer.weight.detach().numpy().T.copy())
        out.append(layer.bias.detach().numpy().copy())
    return out


def grads_to_numpy(linears):
    out = []
    for layer in linears:
        out.append(layer.weight.grad.numpy().T.copy())
        out.append(layer.bias.grad.numpy().copy())
    return out


def param_names(n_layers, prefix=""):
    names = []
    for l in range(n_layers):
        names += [f"{prefix}W{l}", f"{prefix}b{l}"]
    return names


# -------------------------------------------------------------- fixture pieces

def to_torch_inputs(X, y, dtype):
    X_t = torch.from_numpy(X).to(dtype)
    if y.dtype == np.int64:
        return X_t, torch.from_numpy(y)
    return X_t, torch.from_numpy(y).to(dtype)


def reference_gradients(case, data, dtype):
    """Forward output, loss and gradients at the initial parameters."""
    X, y, weights, biases = data
    X_t, y_t = to_torch_inputs(X, y, dtype)
    linears = make_linears(weights, biases, dtype)
    logits, output = forward(linears, case["activations"], X_t)
    loss = compute_loss(case, logits, output, y_t)
    loss.backward()
    result = {"output": output.detach().numpy().copy(),
              "loss": loss.detach().numpy().copy()}
    n_layers = len(weights)
    result.update(zip(param_names(n_layers, "d"), grads_to_numpy(linears)))
    return result


def reference_training(case, data, dtype, config):
    """Parameters after STEPS full-batch optimizer steps."""
    X, y, weights, biases = data
    X_t, y_t = to_torch_inputs(X, y, dtype)
    linears = make_linears(weights, biases, dtype)
    optimizer = make_optimizer(config, parameters(linears))
    for _ in range(STEPS):
        optimizer.zero_grad()
        logits, output = forward(linears, case["activations"], X_t)
        loss = compute_loss(case, logits, output, y_t)
        loss.backward()
        optimizer.step()
    return dict(zip(param_names(len(weights)), params_to_numpy(linears)))


def case_arrays(case, data, dtype_name):
    """All fixture arrays of one case and dtype, keyed without the prefix."""
    np_dtype = np.dtype(dtype_name)
    torch_dtype = getattr(torch, dtype_name)
    X, y, weights, biases = data
    # Cast once in numpy so both dtypes start from the same (rounded) values.
    cast = (X.astype(np_dtype),
            y if y.dtype == np.int64 else y.astype(np_dtype),
            [W.astype(np_dtype) for W in weights],
            [b.astype(np_dtype) for b in biases])
    arrays = {"X": cast[0], "y": cast[1]}
    initial = []
    for W, b in zip(cast[2], cast[3]):
        initial += [W, b]
    arrays.update(zip(param_names(len(weights)), initial))
    arrays.update(reference_gradients(case, cast, torch_dtype))
    for opt_name, config in OPTIMIZERS.items():
        trained = reference_training(case, cast, torch_dtype, config)
        for key, value in trained.items():
            arrays[f"{opt_name}/{key}"] = value
    for key, value in arrays.items():
        expected = np.int64 if key == "y" and y.dtype == np.int64 else np_dtype
        assert value.dtype == expected, (case["name"], dtype_name, key, value.dtype)
    return arrays


def meta():
    cases = [{"name": c["name"], "sizes": c["sizes"], "activations": c["activations"],
              "loss": c["loss"], "targets": c["targets"], "batch": c["batch"]}
             for c in CASES]
    return {"torch_version": torch.__version__, "seed": SEED, "steps": STEPS,
            "dtypes": list(DTYPES), "leaky_relu_negative_slope": LEAKY_SLOPE,
            "cases": cases, "optimizers": OPTIMIZERS}


def main():
    if not torch.__version__.startswith(TORCH_VERSION):
        raise SystemExit(f"need torch=={TORCH_VERSION}, found {torch.__version__}")
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(0)  # nn.Linear init is overwritten anyway
    rng = np.random.default_rng(SEED)

    fixture = {"__meta__": np.array(json.dumps(meta()))}
    for case in CASES:
        data = draw_case(rng, case)
        for dtype_name in DTYPES:
            for key, value in case_arrays(case, data, dtype_name).items():
                fixture[f"{case['name']}/{dtype_name}/{key}"] = value

    np.savez_compressed(OUT_PATH, **fixture)
    print(f"wrote {len(fixture)} arrays to {OUT_PATH} ({os.path.getsize(OUT_PATH)} bytes)")


if __name__ == "__main__":
    main()
