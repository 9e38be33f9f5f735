"""JAX + optax with a whole epoch in one jitted call: ``lax.scan`` over the full batches (each
gathering its rows from the permutation), then one step on the last, partial batch, so the
epoch trains the same samples as the other peers. One dispatch per epoch."""
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
        B = workload.batch_size

        def train_epoch(params, opt_state, X, y, order):
            n_full = order.shape[0] // B * B

            def body(carry, idx):
                params, opt_state, loss = step(*carry, X[idx], y[idx])
                return (params, opt_state), loss

            (params, opt_state), _ = jax.lax.scan(body, (params, opt_state),
                                                  order[:n_full].reshape(-1, B))
            if n_full < order.shape[0]:
                rest = order[n_full:]
                params, opt_state, _ = step(params, opt_state, X[rest], y[rest])
            return params, opt_state

        self.train_epoch = jax.jit(train_epoch)
        self.rng = np.random.default_rng(seed)

    def epoch(self, order=None):
        n = self.X.shape[0]
        order = (self.rng.permutation(n) if order is None else np.asarray(order)).astype(np.int32)
        self.params, self.opt_state = jax.block_until_ready(
            self.train_epoch(self.params, self.opt_state, self.X, self.y, order))

    def get_weights(self):
        return [np.asarray(p) for p in self.params]
