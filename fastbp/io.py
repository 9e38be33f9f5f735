"""Saving and loading models: one ``.npz`` file, read with ``allow_pickle=False``.

The file (a zip of ``.npy`` arrays, readable by plain numpy) holds::

    fastbp_format        "fastbp-model"  (a string array: what this file is)
    format_version       1
    architecture         JSON (a string array): dtype, seed, layers (class and arguments),
                         loss, optimizer (class, hyper-parameters, schedule), metrics,
                         epochs_trained (the schedule's clock), class_names
    rng_state            JSON: the shuffling generator's ``bit_generator.state``
    layers.<i>.W         (in_features, out_features)
    layers.<i>.b         (out_features,)
    optimizer.state1     (n_params,)  SGD's momentum buffer / Adam's first moment m
    optimizer.state2     (n_params,)  Adam's second moment v
    optimizer.step       ()  the optimizer's step count (Adam's bias correction)

Loading never executes code: no pickle, and only this package's layer, loss, optimizer and
schedule classes are built, by name from fixed tables. Every entry's presence, dtype and shape
is checked against the architecture; a truncated, corrupted or foreign file raises
:class:`ModelFileError` (a ValueError) saying what is wrong. A model saved mid-training and
loaded continues exactly as the uninterrupted run would: the weights, the optimizer state and
step, the learning-rate schedule's epoch and the shuffling generator are all restored.
"""
import json
import numbers
import os
import secrets
import zipfile
import zlib

import numpy as np

FORMAT = "fastbp-model"
VERSION = 1


class ModelFileError(ValueError):
    """The file is not a readable fastbp model: truncated, corrupted, foreign or from a newer
    fastbp."""


def _json_array(value):
    return np.array(json.dumps(value, sort_keys=True))


def _optimizer_config(optimizer):
    if optimizer is None:
        return None
    config = {k: v for k, v in optimizer.get_config().items() if k != "schedule"}
    if "betas" in config:
        config["betas"] = list(config["betas"])
    schedule = optimizer.schedule
    return {"class": type(optimizer).__name__, "config": config,
            "schedule": None if schedule is None else
            {"class": type(schedule).__name__, "config": schedule.get_config()}}


def _check_class_names(names, n_outputs):
    if names is None:
        return None
    if isinstance(names, (str, bytes)) or not hasattr(names, "__iter__"):
        raise TypeError(f"class_names must be a list of strings, got {names!r}")
    names = list(names)
    if not all(isinstance(name, str) for name in names):
        raise TypeError("class_names must be a list of strings")
    allowed = (n_outputs, 2) if n_outputs == 1 else (n_outputs,)
    if len(names) not in allowed:
        raise ValueError(f"class_names must have {' or '.join(map(str, allowed))} entries for "
                         f"a model with {n_outputs} output{'s' if n_outputs > 1 else ''}, "
                         f"got {len(names)}")
    return names


def model_arrays(model):
    """The arrays ``save_model`` writes, by name."""
    architecture = {
        "dtype": model.dtype.name,
        # the seed only drew the initial weights (the generator's state is saved below)
        "seed": int(model.seed) if isinstance(model.seed, numbers.Integral) else None,
        "layers": [{"class": type(layer).__name__, "in_features": layer.in_features,
                    "out_features": layer.out_features, "activation": layer.activation,
                    "negative_slope": layer.negative_slope, "init": layer.init}
                   for layer in model.layers],
        "loss": None if model.loss is None else
        {"class": type(model.loss).__name__, "name": model.loss.name},
        "optimizer": _optimizer_config(model.optimizer),
        "metrics": [name for name, _ in model.metrics],
        "epochs_trained": int(model._epochs_trained),
        "class_names": _check_class_names(model.class_names, model.layers[-1].out_features),
    }
    arrays = {"fastbp_format": np.array(FORMAT), "format_version": np.array(VERSION),
              "architecture": _json_array(architecture),
              "rng_state": _json_array(model._rng.bit_generator.state)}
    for i, piece in enumerate(model.get_weights()):
        arrays[f"layers.{i // 2}.{'Wb'[i % 2]}"] = piece
    network = model._network
    arrays["optimizer.state1"] = network.state1.copy()
    arrays["optimizer.state2"] = network.state2.copy()
    arrays["optimizer.step"] = np.array(network.step, dtype=np.int64)
    return arrays


def save_model(model, path):
    """Write ``model`` to ``path`` (exactly that name; ``.npz`` is the usual suffix).

    The arrays go to a temporary file in the same directory, which is flushed to disk and
    then renamed over ``path`` (``os.replace``, atomic on POSIX and Windows): a crash or an
    error mid-save leaves the previous file, if any, untouched, and no temporary file behind.
    """
    path = os.fspath(path)
    arrays = model_arrays(model)
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    # os.open applies the umask, so the file gets the permissions a plain open() would give
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_directory(directory)


def _fsync_directory(directory):
    """Make the rename durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ---- loading --------------------------------------------------------------------------------
def load_model(path):
    """Read a model written by ``model.save``. Returns a Sequential, compiled when the saved
    model was, with its weights, optimizer state and step, schedule clock, shuffling
    generator state and ``class_names`` restored.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ModelFileError (a ValueError)
        The file is not a fastbp model, is truncated or corrupted, or does not match its own
        architecture; the message says which.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no model file at {path!r}")
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ModelFileError(f"{path!r} is not a fastbp model file: it is not a readable .npz "
                             f"archive ({exc})") from exc
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ModelFileError(f"{path!r} is not a fastbp model file: it holds a single numpy "
                             "array, not a .npz archive")
    with archive:
        return _from_archive(path, _read_all(path, archive))


def _read_all(path, archive):
    """Every member as an array; a damaged member (CRC mismatch, cut short) raises."""
    arrays = {}
    for name in archive.files:
        try:
            arrays[name] = archive[name]
        except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
            raise ModelFileError(f"{path!r} is truncated or corrupted: entry {name!r} cannot be "
                                 f"read ({exc})") from exc
    return arrays


def _string(arrays, name, path):
    value = arrays.get(name)
    if value is None:
        raise ModelFileError(f"{path!r} is not a fastbp model file: it has no {name!r} entry")
    if value.shape != () or value.dtype.kind != "U":
        raise ModelFileError(f"{path!r}: entry {name!r} must be a string, got an array of "
                             f"dtype {value.dtype} and shape {value.shape}")
    return str(value)


def _json(arrays, name, path):
    try:
        return json.loads(_string(arrays, name, path))
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{path!r} is corrupted: entry {name!r} is not valid JSON "
                             f"({exc})") from exc


def _require(condition, path, message):
    if not condition:
        raise ModelFileError(f"{path!r} has an invalid architecture: {message}")


def _from_archive(path, arrays):
    from . import losses, optimizers, schedules
    from .layers import Dense
    from .model import Sequential

    if "fastbp_format" not in arrays or _string(arrays, "fastbp_format", path) != FORMAT:
        raise ModelFileError(f"{path!r} is not a fastbp model file (no 'fastbp_format' entry "
                             f"saying {FORMAT!r}); found entries {sorted(arrays)[:8]}")
    version = arrays.get("format_version")
    if version is None or version.shape != () or version.dtype.kind not in "iu":
        raise ModelFileError(f"{path!r}: missing or malformed 'format_version'")
    if int(version) > VERSION:
        raise ModelFileError(f"{path!r} was written by a newer fastbp (format version "
                             f"{int(version)}; this fastbp reads up to {VERSION}): upgrade fastbp")
    arch = _json(arrays, "architecture", path)
    _require(isinstance(arch, dict), path, "not a JSON object")
    expected_keys = {"dtype", "seed", "layers", "loss", "optimizer", "metrics", "epochs_trained",
                     "class_names"}
    _require(set(arch) == expected_keys, path,
             f"keys {sorted(arch)} differ from {sorted(expected_keys)}")
    _require(isinstance(arch["layers"], list) and arch["layers"], path,
             "'layers' must be a non-empty list")
    try:
        layers = []
        for i, spec in enumerate(arch["layers"]):
            _require(isinstance(spec, dict) and spec.get("class") == "Dense", path,
                     f"layers[{i}] must be a Dense layer, got {spec!r:.80}")
            layers.append(Dense(spec["in_features"], spec["out_features"], spec["activation"],
                                spec["negative_slope"], spec["init"]))
        model = Sequential(layers, dtype=arch["dtype"], seed=arch["seed"])
    except ModelFileError:
        raise
    except (TypeError, ValueError, KeyError) as exc:
        raise ModelFileError(f"{path!r} has an invalid architecture: {exc}") from exc

    # every array present, of the model's dtype and shape; nothing else
    expected = {"fastbp_format", "format_version", "architecture", "rng_state",
                "optimizer.state1", "optimizer.state2", "optimizer.step"}
    shapes = {}
    for i, layer in enumerate(model.layers):
        shapes[f"layers.{i}.W"] = (layer.in_features, layer.out_features)
        shapes[f"layers.{i}.b"] = (layer.out_features,)
    n_params = model.count_params()
    shapes["optimizer.state1"] = shapes["optimizer.state2"] = (n_params,)
    missing = sorted((set(shapes) | expected) - set(arrays))
    extra = sorted(set(arrays) - set(shapes) - expected)
    if missing:
        raise ModelFileError(f"{path!r} is incomplete: missing entries {missing}")
    if extra:
        raise ModelFileError(f"{path!r} has entries its architecture does not explain: {extra}")
    for name, shape in shapes.items():
        value = arrays[name]
        if value.dtype != model.dtype or value.shape != shape:
            raise ModelFileError(f"{path!r}: entry {name!r} must be {model.dtype.name} of shape "
                                 f"{shape} for this architecture, got {value.dtype} {value.shape}")
        if not np.isfinite(value).all():
            raise ModelFileError(f"{path!r}: entry {name!r} holds NaN or infinity")
    step = arrays["optimizer.step"]
    if step.shape != () or step.dtype.kind not in "iu" or int(step) < 0:
        raise ModelFileError(f"{path!r}: 'optimizer.step' must be an integer >= 0")

    model.set_weights([arrays[name] for name in shapes if name.startswith("layers.")])
    try:
        model.class_names = _check_class_names(arch["class_names"],
                                               model.layers[-1].out_features)
        epochs_trained = arch["epochs_trained"]
        _require(isinstance(epochs_trained, int) and epochs_trained >= 0, path,
                 "'epochs_trained' must be an integer >= 0")
        if arch["loss"] is not None:
            loss = arch["loss"]
            _require(isinstance(loss, dict) and loss.get("name") in losses.LOSSES, path,
                     f"unknown loss {loss!r:.80}")
            loss_object = losses.get(loss["name"])
            _require(type(loss_object).__name__ == loss.get("class"), path,
                     f"loss class {loss.get('class')!r} does not match its name {loss['name']!r}")
            model.compile(loss=loss_object, optimizer=_build_optimizer(arch["optimizer"], path,
                                                                       optimizers, schedules),
                          metrics=arch["metrics"])
            model._network.state1[...] = arrays["optimizer.state1"]
            model._network.state2[...] = arrays["optimizer.state2"]
            model._network.step = int(step)
        else:
            _require(arch["optimizer"] is None and arch["metrics"] == [], path,
                     "an optimizer or metrics without a loss")
        model._epochs_trained = epochs_trained
    except ModelFileError:
        raise
    except (TypeError, ValueError, KeyError) as exc:
        raise ModelFileError(f"{path!r} has an invalid architecture: {exc}") from exc
    try:
        model._rng.bit_generator.state = _json(arrays, "rng_state", path)
    except ModelFileError:
        raise
    except (TypeError, ValueError, KeyError) as exc:
        raise ModelFileError(f"{path!r}: 'rng_state' is not a state of the model's random "
                             f"generator ({exc})") from exc
    return model


def _build_optimizer(spec, path, optimizers, schedules):
    _require(isinstance(spec, dict) and spec.get("class") in
             {cls.__name__ for cls in optimizers.OPTIMIZERS.values()}, path,
             f"unknown optimizer {spec!r:.80}")
    _require(isinstance(spec.get("config"), dict), path, "the optimizer's config must be a mapping")
    cls = next(c for c in optimizers.OPTIMIZERS.values() if c.__name__ == spec["class"])
    config = dict(spec["config"])
    if "betas" in config and isinstance(config["betas"], list):
        config["betas"] = tuple(config["betas"])
    optimizer = cls(**config)
    if spec.get("schedule") is not None:
        schedule = spec["schedule"]
        _require(isinstance(schedule, dict), path, "the schedule must be a mapping")
        optimizer.lr = schedules.from_config(schedule.get("class"), schedule.get("config"))
        optimizer._validate()
    return optimizer
