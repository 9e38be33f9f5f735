"""JAX + optax with a whole epoch in one jitted call: ``lax.scan`` over the full batches (each
gathering its rows from the permutation), then one step on the last, partial batch, so the
epoch trains the same samples as the other peers. One dispatch per epoch."""
import jax

from ._jax_common import REQUIRES, JaxTrainer, versions  # noqa: F401


class Trainer(JaxTrainer):
    def jit_training(self, step):
        B = self.w.batch_size

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

    def epoch(self, order=None):
        order = self.epoch_order(order)
        self.params, self.opt_state = jax.block_until_ready(
            self.train_epoch(self.params, self.opt_state, self.X, self.y, order))
