"""model.save / fastbp.load_model: a round trip restores everything, training resumes exactly,
saving is atomic, and a damaged or foreign file is rejected with a clear error."""
import json
import os
import zipfile

import numpy as np
import pytest

import fastbp as fb
from fastbp.io import ModelFileError


def blobs(n=240, n_features=6, n_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=2, size=(n_classes, n_features))
    y = rng.integers(0, n_classes, n)
    return centers[y] + rng.normal(size=(n, n_features)), y


def classifier(optimizer="adam", dtype="float32", seed=0):
    model = fb.Sequential([fb.Dense(6, 16, activation="leaky_relu", negative_slope=0.1),
                           fb.Dense(16, 8, activation="tanh", init="torch"),
                           fb.Dense(8, 3, activation="softmax")], dtype=dtype, seed=seed)
    model.compile(loss="categorical_crossentropy", optimizer=optimizer, metrics=["accuracy"])
    return model


def assert_same_weights(a, b):
    for x, y in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(x, y)


@pytest.fixture
def saved(tmp_path):
    """A trained model and the path it was saved to."""
    X, y = blobs()
    model = classifier()
    model.fit(X, y, epochs=2, verbose=0)
    path = tmp_path / "model.npz"
    model.save(path)
    return model, path


def rewrite(path, change):
    """Rewrite the .npz at path after change(arrays) edits its dict of arrays in place."""
    with np.load(path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    change(arrays)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def edit_architecture(path, change):
    def edit(arrays):
        arch = json.loads(str(arrays["architecture"]))
        change(arch)
        arrays["architecture"] = np.array(json.dumps(arch))
    rewrite(path, edit)


# ---- round trip -------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_round_trip_restores_everything(tmp_path, dtype):
    X, y = blobs()
    model = classifier(fb.AdamW(lr=3e-3, betas=(0.8, 0.99), weight_decay=0.05), dtype)
    model.fit(X, y, epochs=2, verbose=0)
    model.class_names = ["red", "green", "blue"]
    model.save(tmp_path / "m.npz")
    loaded = fb.load_model(tmp_path / "m.npz")
    assert repr(loaded) == repr(model) and loaded.dtype == model.dtype
    assert [(l.negative_slope, l.init) for l in loaded.layers] == \
        [(l.negative_slope, l.init) for l in model.layers]
    assert_same_weights(model, loaded)
    assert type(loaded.optimizer) is fb.AdamW
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert type(loaded.loss) is type(model.loss)
    assert [name for name, _ in loaded.metrics] == ["accuracy"]
    for buffer in ("state1", "state2"):
        np.testing.assert_array_equal(getattr(loaded._network, buffer),
                                      getattr(model._network, buffer))
    assert loaded._network.step == model._network.step > 0
    assert loaded.class_names == ["red", "green", "blue"]
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert loaded.evaluate(X, y) == model.evaluate(X, y)


def test_uncompiled_model_round_trip(tmp_path):
    model = fb.Sequential([fb.Dense(3, 2, activation="sigmoid")], seed=5)
    model.save(tmp_path / "m.npz")
    loaded = fb.load_model(tmp_path / "m.npz")
    assert loaded.loss is None and loaded.optimizer is None
    assert_same_weights(model, loaded)


def test_the_file_is_plain_numpy(saved):
    model, path = saved
    with np.load(path, allow_pickle=False) as archive:
        assert str(archive["fastbp_format"]) == "fastbp-model"
        np.testing.assert_array_equal(archive["layers.0.W"], model.layers[0].W)
        arch = json.loads(str(archive["architecture"]))
        assert [layer["class"] for layer in arch["layers"]] == ["Dense"] * 3
        assert arch["optimizer"]["class"] == "Adam"
        assert arch["loss"] == {"class": "CategoricalCrossentropy",
                                "name": "categorical_crossentropy"}
        assert json.loads(str(archive["rng_state"]))["bit_generator"] == "PCG64"


def test_class_names_are_checked(tmp_path):
    model = classifier()
    model.class_names = ["a", "b"]
    with pytest.raises(ValueError, match="class_names must have 3 entries"):
        model.save(tmp_path / "m.npz")
    assert not (tmp_path / "m.npz").exists()


# ---- resuming ---------------------------------------------------------------------------------
@pytest.mark.parametrize("make_optimizer", [
    lambda: fb.Adam(lr=fb.schedules.CosineDecay(1e-2, epochs=6, warmup_epochs=1)),
    lambda: fb.SGD(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    lambda: fb.AdamW(lr=1e-2),
])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_resume_after_load_equals_uninterrupted_training(tmp_path, make_optimizer, dtype):
    """Weights, optimizer state and step, the schedule's epoch and the shuffling generator
    all come back: 3 + 3 epochs across a save/load equal 6 epochs in one go, bit for bit."""
    X, y = blobs()
    options = dict(batch_size=16, validation_split=0.25, verbose=0, shuffle=True)
    straight = classifier(make_optimizer(), dtype)
    full = straight.fit(X, y, epochs=6, **options).history

    first = classifier(make_optimizer(), dtype)
    head = first.fit(X, y, epochs=3, **options).history
    first.save(tmp_path / "ckpt.npz")
    del first
    resumed = fb.load_model(tmp_path / "ckpt.npz")
    tail = resumed.fit(X, y, epochs=3, **options).history
    assert_same_weights(straight, resumed)
    for key in full:
        assert head[key] + tail[key] == full[key]


def test_resume_needs_the_generator_state(tmp_path):
    """Without the saved shuffling state the resumed run would differ: the test above would
    catch a load that forgot it."""
    X, y = blobs()
    a = classifier()
    a.fit(X, y, epochs=1, verbose=0)
    a.save(tmp_path / "m.npz")
    b = fb.load_model(tmp_path / "m.npz")
    b._rng = np.random.default_rng(0)
    a.fit(X, y, epochs=1, verbose=0)
    b.fit(X, y, epochs=1, verbose=0)
    assert not np.array_equal(a.layers[0].W, b.layers[0].W)


# ---- atomic save ------------------------------------------------------------------------------
def test_failed_save_keeps_the_previous_file(saved, monkeypatch):
    model, path = saved
    before = path.read_bytes()

    def broken_savez(file, **arrays):
        file.write(b"PK\x03\x04 partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    model.fit(*blobs(), epochs=1, verbose=0)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == before
    assert os.listdir(path.parent) == ["model.npz"]  # no temporary file left


def test_save_replaces_and_gets_ordinary_permissions(saved, tmp_path):
    model, path = saved
    model.fit(*blobs(), epochs=1, verbose=0)
    model.save(path)
    assert_same_weights(fb.load_model(path), model)
    plain = tmp_path / "plain"
    plain.write_bytes(b"")
    assert (path.stat().st_mode & 0o777) == (plain.stat().st_mode & 0o777)
    assert sorted(os.listdir(tmp_path)) == ["model.npz", "plain"]


# ---- rejected files ---------------------------------------------------------------------------
def test_missing_file():
    with pytest.raises(FileNotFoundError, match="no model file"):
        fb.load_model("/nonexistent/model.npz")


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.9, 0.999])
def test_truncated_file_is_rejected(saved, fraction):
    _, path = saved
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * fraction)])
    with pytest.raises(ModelFileError, match="not a readable .npz|truncated or corrupted"):
        fb.load_model(path)


def test_corrupted_weights_are_rejected(saved):
    model, path = saved
    data = bytearray(path.read_bytes())
    # flip bytes inside the first layer's weights (found by their exact bytes)
    start = bytes(data).index(model.layers[0].W.tobytes()[:32]) + 8
    data[start:start + 4] = bytes(b ^ 0xFF for b in data[start:start + 4])
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match=r"truncated or corrupted: entry 'layers.0.W'.*CRC"):
        fb.load_model(path)


@pytest.mark.parametrize("content, message", [
    (b"", "not a readable .npz"),
    (b"hello, world\n" * 10, "not a readable .npz"),
    (os.urandom(2000), "not a readable .npz"),
])
def test_foreign_bytes_are_rejected(tmp_path, content, message):
    path = tmp_path / "x.npz"
    path.write_bytes(content)
    with pytest.raises(ModelFileError, match=message):
        fb.load_model(path)


def test_other_numpy_files_are_rejected(tmp_path):
    np.save(tmp_path / "a.npy", np.arange(3))
    with pytest.raises(ModelFileError, match="single numpy array"):
        fb.load_model(tmp_path / "a.npy")
    np.savez(tmp_path / "b.npz", W=np.ones(3))
    with pytest.raises(ModelFileError, match="not a fastbp model file .*'fastbp_format'"):
        fb.load_model(tmp_path / "b.npz")
    np.savez(tmp_path / "c.npz", fastbp_format=np.array([object()], dtype=object))
    with pytest.raises(ModelFileError, match="cannot be read.*allow_pickle"):
        fb.load_model(tmp_path / "c.npz")


def corrupt_entry(name, value):
    return lambda arrays: arrays.__setitem__(name, value)


@pytest.mark.parametrize("change, message", [
    (lambda a: a.pop("layers.1.b"), r"missing entries \['layers.1.b'\]"),
    (lambda a: a.pop("rng_state"), r"missing entries \['rng_state'\]"),
    (lambda a: a.__setitem__("extra", np.ones(2)),
     r"entries its architecture does not explain: \['extra'\]"),
    (lambda a: a.__setitem__("layers.0.W", np.ones((6, 15), np.float32)),
     r"'layers.0.W' must be float32 of shape \(6, 16\).*\(6, 15\)"),
    (lambda a: a.__setitem__("layers.2.b", np.ones(3)), r"'layers.2.b' must be float32 .*float64"),
    (lambda a: a.__setitem__("optimizer.state1", np.ones(10, np.float32)),
     "'optimizer.state1' must be"),
    (lambda a: a.__setitem__("layers.0.b", np.full(16, np.nan, np.float32)), "NaN or infinity"),
    (lambda a: a.__setitem__("optimizer.step", np.array(-1)), "'optimizer.step' must be"),
    (lambda a: a.__setitem__("format_version", np.array(99)), "newer fastbp .*version 99"),
    (lambda a: a.__setitem__("fastbp_format", np.array("something-else")), "not a fastbp model"),
    (lambda a: a.__setitem__("architecture", np.array("{not json")),
     "'architecture' is not valid JSON"),
    (lambda a: a.__setitem__("architecture", np.array([1, 2])), "'architecture' must be a string"),
    (lambda a: a.__setitem__("rng_state", np.array('{"bit_generator": "MT19937"}')),
     "'rng_state' is not"),
])
def test_inconsistent_entries_are_rejected(saved, change, message):
    _, path = saved
    rewrite(path, change)
    with pytest.raises(ModelFileError, match=message):
        fb.load_model(path)


@pytest.mark.parametrize("change, message", [
    (lambda a: a["layers"][1].__setitem__("in_features", 17), "layers\\[1\\].in_features is 17"),
    (lambda a: a["layers"][0].__setitem__("class", "Conv2D"), "must be a Dense layer"),
    (lambda a: a["layers"][0].__setitem__("activation", "gelu"), "activation must be one of"),
    (lambda a: a.__setitem__("dtype", "float16"), "dtype must be 'float32' or 'float64'"),
    (lambda a: a["optimizer"].__setitem__("class", "subprocess.Popen"), "unknown optimizer"),
    (lambda a: a["optimizer"]["config"].__setitem__("lr", -1), "lr must be in"),
    (lambda a: a["optimizer"]["config"].__setitem__("amsgrad", True), "unexpected keyword"),
    (lambda a: a["loss"].__setitem__("name", "hinge"), "unknown loss"),
    (lambda a: a["loss"].__setitem__("class", "MeanSquaredError"), "does not match its name"),
    (lambda a: a.__setitem__("metrics", ["f1"]), "metrics must name"),
    (lambda a: a.__setitem__("epochs_trained", -3), "'epochs_trained' must be"),
    (lambda a: a.__setitem__("class_names", ["a"]), "class_names must have 3 entries"),
    (lambda a: a.pop("seed"), "keys .* differ from"),
])
def test_inconsistent_architecture_is_rejected(saved, change, message):
    _, path = saved
    edit_architecture(path, change)
    with pytest.raises(ModelFileError, match=message):
        fb.load_model(path)


def test_a_schedule_round_trips_and_unknown_ones_are_rejected(tmp_path):
    schedule = fb.schedules.StepDecay(0.1, step_size=2, gamma=0.5, warmup_epochs=1)
    model = classifier(fb.SGD(lr=schedule, momentum=0.5))
    model.fit(*blobs(), epochs=3, verbose=0)
    model.save(tmp_path / "m.npz")
    loaded = fb.load_model(tmp_path / "m.npz")
    assert loaded.optimizer.schedule == schedule and loaded._epochs_trained == 3
    edit_architecture(tmp_path / "m.npz",
                      lambda a: a["optimizer"]["schedule"].__setitem__("class", "eval"))
    with pytest.raises(ModelFileError, match="unknown schedule 'eval'"):
        fb.load_model(tmp_path / "m.npz")


def test_zip_members_are_checked_even_when_unused(saved):
    """A file whose zip directory is intact but one member is cut short is still rejected."""
    _, path = saved
    with zipfile.ZipFile(path) as z:
        members = {info.filename: z.read(info.filename) for info in z.infolist()}
    members["rng_state.npy"] = members["rng_state.npy"][:40]
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    with pytest.raises(ModelFileError, match="'rng_state'"):
        fb.load_model(path)
