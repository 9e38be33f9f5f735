"""JAX + optax, one jitted training step per mini-batch (the usual JAX training loop). The
data lives on the device; the step gathers its batch from a slice of the epoch's
permutation, so each step is one dispatch."""
import jax
import numpy as np

from ._jax_common import REQUIRES, make_optimizer, make_step, setup, versions  # noqa: F401


class Trainer:
    def __init__(self, workload, X, y, weights, seed=0):
        self.w = workload
        self.params = setup(workload, weights)
        self.X, self.y = jax.device_put(X), jax.device_put(y)
        optimizer = make_optimizer(workload)
        self.opt_state = optimizer.init(self.params)
        step = make_step(workload, optimizer)
        self.train_step = jax.jit(lambda p, s, X, y, idx: step(p, s, X[idx], y[idx]))
        self.rng = np.random.default_rng(seed)

    def epoch(self, order=None):
        n, B = self.X.shape[0], self.w.batch_size
        order = (self.rng.permutation(n) if order is None else np.asarray(order)).astype(np.int32)
        params, opt_state = self.params, self.opt_state
        for i in range(0, n, B):
            params, opt_state, _ = self.train_step(params, opt_state, self.X, self.y,
                                                   order[i:i + B])
        self.params, self.opt_state = jax.block_until_ready((params, opt_state))

    def get_weights(self):
        return [np.asarray(p) for p in self.params]
