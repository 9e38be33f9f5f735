"""fastbp through its public API: Sequential + compile + fit, one ``fit(epochs=1)`` per epoch
(so each epoch's time includes fit's input checks and its permutation draw)."""
import fastbp as fb

REQUIRES = ["fastbp"]


def versions():
    return {"fastbp": fb.__version__, "fastbp_path": fb.__file__}


def build(workload, weights, seed=0):
    """A compiled fastbp model of the workload, starting from ``weights``."""
    n_layers = len(workload.sizes) - 1
    layers = [fb.Dense(n_in, n_out, activation=workload.hidden if i < n_layers - 1 else None)
              for i, (n_in, n_out) in enumerate(zip(workload.sizes[:-1], workload.sizes[1:]))]
    model = fb.Sequential(layers, dtype=workload.dtype, seed=seed)
    args = workload.opt_args
    if workload.optimizer == "sgd":
        optimizer = fb.SGD(lr=args["lr"], momentum=args.get("momentum", 0.0))
    else:
        optimizer = fb.Adam(lr=args["lr"], betas=args["betas"], eps=args["eps"])
    model.compile(loss=workload.loss, optimizer=optimizer)
    model.set_weights(weights)
    return model


class Trainer:
    def __init__(self, workload, X, y, weights, seed=0):
        self.w, self.X, self.y = workload, X, y
        self.model = build(workload, weights, seed)

    def epoch(self, order=None):
        if order is None:
            self.model.fit(self.X, self.y, epochs=1, batch_size=self.w.batch_size, verbose=0)
        else:
            self.model.fit(self.X[order], self.y[order], epochs=1,
                           batch_size=self.w.batch_size, shuffle=False, verbose=0)

    def get_weights(self):
        return self.model.get_weights()
