"""What the two JAX peers share: the network, the loss and the optax optimizer as pure
functions, one training step ``step(params, opt_state, X, y)``, and ``JaxTrainer``, the
trainer's set-up and weights (each peer adds how it jits the step and runs an epoch)."""
import jax
import jax.numpy as jnp
import numpy as np
import optax

REQUIRES = ["jax", "jaxlib", "optax"]


def versions():
    return {"jax": jax.__version__, "optax": optax.__version__}


def setup(workload, weights):
    """Enable float64 when the workload needs it; the weights as a list of jax arrays."""
    if workload.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    return [jnp.asarray(p) for p in weights]


def make_optimizer(workload):
    args = workload.opt_args
    if workload.optimizer == "sgd":
        return optax.sgd(args["lr"], momentum=args.get("momentum") or None)
    return optax.adam(args["lr"], b1=args["betas"][0], b2=args["betas"][1], eps=args["eps"])


def make_step(workload, optimizer):
    """step(params, opt_state, X, y) -> (params, opt_state, loss), to be jitted or scanned."""
    act = jax.nn.relu if workload.hidden == "relu" else jnp.tanh

    def loss_fn(params, X, y):
        A = X
        n_layers = len(params) // 2
        for i in range(n_layers):
            A = A @ params[2 * i] + params[2 * i + 1]
            if i < n_layers - 1:
                A = act(A)
        if workload.loss == "categorical_crossentropy":
            return optax.softmax_cross_entropy_with_integer_labels(A, y).mean()
        if workload.loss == "binary_crossentropy":
            return optax.sigmoid_binary_cross_entropy(A, y).mean()
        return jnp.mean((A - y) ** 2)

    def step(params, opt_state, X, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, X, y)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return step


class JaxTrainer:
    """The part of a JAX peer's ``Trainer`` that both peers share: the parameters and the
    optimizer state as jax arrays, the data on the device, the generator that shuffles each
    epoch. A peer defines ``jit_training(step)``, which jits ``step`` its own way, and
    ``epoch(order=None)``."""

    def __init__(self, workload, X, y, weights, seed=0):
        self.w = workload
        self.params = setup(workload, weights)
        self.X, self.y = jax.device_put(X), jax.device_put(y)
        optimizer = make_optimizer(workload)
        self.opt_state = optimizer.init(self.params)
        self.jit_training(make_step(workload, optimizer))
        self.rng = np.random.default_rng(seed)

    def jit_training(self, step):
        """Jit ``step(params, opt_state, X, y)`` the peer's way and keep what ``epoch`` calls."""
        raise NotImplementedError

    def epoch_order(self, order):
        """The epoch's sample order as int32: ``order``, or (None) a permutation drawn from
        the trainer's generator."""
        n = self.X.shape[0]
        return (self.rng.permutation(n) if order is None else np.asarray(order)).astype(np.int32)

    def get_weights(self):
        """[W0, b0, W1, b1, ...] as numpy arrays."""
        return [np.asarray(p) for p in self.params]
