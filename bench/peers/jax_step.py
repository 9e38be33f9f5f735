"""JAX + optax, one jitted training step per mini-batch (the usual JAX training loop). The
data lives on the device; the step gathers its batch from a slice of the epoch's
permutation, so each step is one dispatch."""
import jax

from ._jax_common import REQUIRES, JaxTrainer, versions  # noqa: F401


class Trainer(JaxTrainer):
    def jit_training(self, step):
        self.train_step = jax.jit(lambda p, s, X, y, idx: step(p, s, X[idx], y[idx]))

    def epoch(self, order=None):
        n, B = self.X.shape[0], self.w.batch_size
        order = self.epoch_order(order)
        params, opt_state = self.params, self.opt_state
        for i in range(0, n, B):
            params, opt_state, _ = self.train_step(params, opt_state, self.X, self.y,
                                                   order[i:i + B])
        self.params, self.opt_state = jax.block_until_ready((params, opt_state))
