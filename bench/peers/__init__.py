"""The peers that bench/compare_peers.py trains side by side.

Each peer is one small module with the same face:

    Trainer(workload, X, y, weights, seed)   load the shared initial weights, preload the data
    trainer.epoch(order=None)                one epoch; returns when the work is done.
                                             order=None: shuffle the way the peer's users do;
                                             an index array: visit the samples in that order
                                             (tests use it to compare peers step for step)
    trainer.get_weights()                    [W0, b0, W1, b1, ...] as numpy, W of shape (in, out)

and ``REQUIRES``, the modules it imports (a peer whose modules are missing is skipped), and
``versions()``, the library versions worth printing.
"""
import importlib
import importlib.util

# name -> (module, what the table calls it)
PEERS = {
    "fastbp": ("fastbp_model", "fastbp"),
    "numpy": ("numpy_loop", "numpy loop"),
    "torch": ("torch_eager", "PyTorch eager"),
    "jax_step": ("jax_step", "JAX jit step"),
    "jax_scan": ("jax_scan", "JAX scan epoch"),
}

# what each peer module imports, known without importing it (torch and jax take seconds)
REQUIRES = {
    "fastbp": ["fastbp"],
    "numpy": ["numpy"],
    "torch": ["torch"],
    "jax_step": ["jax", "jaxlib", "optax"],
    "jax_scan": ["jax", "jaxlib", "optax"],
}


def missing(peer):
    """The modules the peer needs that are not installed (empty when it can run)."""
    return [name for name in REQUIRES[peer] if importlib.util.find_spec(name) is None]


def load(peer):
    """The peer's module."""
    return importlib.import_module(f"peers.{PEERS[peer][0]}")
