"""PyTorch eager: torch.nn.Sequential + torch.optim with their defaults, the data preloaded
as tensors, shuffled once per epoch and sliced into batches.

The permutation comes from numpy's generator with the same seed as the numpy and JAX peers, so
those three visit the samples in the same order and end with the same loss to float precision
(fastbp draws its own order inside fit)."""
import re

import numpy as np
import torch

REQUIRES = ["torch"]


def versions():
    blas = re.search(r"BLAS_INFO=(\w+)", torch.__config__.show())
    return {"torch": torch.__version__, "torch_blas": blas.group(1) if blas else "?",
            "torch_threads": torch.get_num_threads()}


def build(workload, weights):
    layers = []
    n_layers = len(workload.sizes) - 1
    for i, (n_in, n_out) in enumerate(zip(workload.sizes[:-1], workload.sizes[1:])):
        layers.append(torch.nn.Linear(n_in, n_out))
        if i < n_layers - 1:
            layers.append(torch.nn.ReLU() if workload.hidden == "relu" else torch.nn.Tanh())
    model = torch.nn.Sequential(*layers).to(getattr(torch, workload.dtype))
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for layer, W, b in zip(linears, weights[0::2], weights[1::2]):
            layer.weight.copy_(torch.from_numpy(W.T.copy()))
            layer.bias.copy_(torch.from_numpy(b))
    return model, linears


class Trainer:
    def __init__(self, workload, X, y, weights, seed=0):
        self.w = workload
        self.model, self.linears = build(workload, weights)
        self.X = torch.from_numpy(X)
        self.y = torch.from_numpy(y)
        args = workload.opt_args
        if workload.optimizer == "sgd":
            self.opt = torch.optim.SGD(self.model.parameters(), lr=args["lr"],
                                       momentum=args.get("momentum", 0.0))
        else:
            self.opt = torch.optim.Adam(self.model.parameters(), lr=args["lr"],
                                        betas=args["betas"], eps=args["eps"])
        self.loss_fn = {"categorical_crossentropy": torch.nn.CrossEntropyLoss(),
                        "binary_crossentropy": torch.nn.BCEWithLogitsLoss(),
                        "mse": torch.nn.MSELoss()}[workload.loss]
        self.rng = np.random.default_rng(seed)

    def epoch(self, order=None):
        n, B = len(self.X), self.w.batch_size
        perm = torch.from_numpy(self.rng.permutation(n) if order is None
                                else np.asarray(order, dtype=np.int64))
        X, y = self.X[perm], self.y[perm]
        for i in range(0, n, B):
            self.opt.zero_grad()
            loss = self.loss_fn(self.model(X[i:i + B]), y[i:i + B])
            loss.backward()
            self.opt.step()

    def get_weights(self):
        out = []
        for layer in self.linears:
            out += [layer.weight.detach().numpy().T.copy(), layer.bias.detach().numpy().copy()]
        return out
