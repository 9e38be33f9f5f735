"""One tiny network worked by hand: 2 inputs -> 2 sigmoid units -> 1 sigmoid output, binary
cross-entropy (mean over the batch), two samples, one full-batch SGD step with lr = 0.5.

Every number below was worked out with a calculator (30-digit arithmetic, rounded to 15
significant digits here), one scalar operation at a time as the comments show; the test
only compares fastbp's results with these literals. Notation: W0 is (in, out), so
z0[j] = x[0] W0[0, j] + x[1] W0[1, j] + b0[j]; sigma(z) = 1 / (1 + exp(-z)).

Parameters                          Data
  W0 = [[0.1, -0.2],                  x1 = (1.0,  2.0),  y1 = 1
        [0.3,  0.4]]                  x2 = (0.5, -1.0),  y2 = 0
  b0 = [0.05, -0.1]
  W1 = [[0.7], [-0.5]]
  b1 = [0.2]

Forward, sample 1
  z0 = (1*0.1 + 2*0.3 + 0.05,  1*(-0.2) + 2*0.4 - 0.1) = (0.75, 0.5)
  h  = (sigma(0.75), sigma(0.5))
     = (1/(1 + 0.472366552741015), 1/(1 + 0.606530659712633))
     = (0.679178699175393, 0.622459331201855)
  z1 = 0.7*0.679178699175393 - 0.5*0.622459331201855 + 0.2
     = 0.475425089422775 - 0.311229665600928 + 0.2 = 0.364195423821848
  p1 = sigma(0.364195423821848) = 1/(1 + 0.694755409718112) = 0.590055647125109
Forward, sample 2
  z0 = (0.5*0.1 - 1*0.3 + 0.05,  0.5*(-0.2) - 1*0.4 - 0.1) = (-0.2, -0.6)
  h  = (1/(1 + 1.22140275816017), 1/(1 + 1.82211880039051))
     = (0.450166002687522, 0.354343693774205)
  z1 = 0.7*0.450166002687522 - 0.5*0.354343693774205 + 0.2
     = 0.315116201881265 - 0.177171846887103 + 0.2 = 0.337944354994163
  p2 = sigma(0.337944354994163) = 1/(1 + 0.713234974758418) = 0.583691095928630

Loss (mean binary cross-entropy)
  l1 = -log(p1)     = -log(0.590055647125109) = 0.527538429368754
  l2 = -log(1 - p2) = -log(0.416308904071370) = 0.876327736416691
  L  = (0.527538429368754 + 0.876327736416691) / 2 = 0.701933082892722

Backward. With the sigmoid fused into the loss, dL/dz1 = (p - y) / n, n = 2:
  dz1 = ((0.590055647125109 - 1)/2, (0.583691095928630 - 0)/2)
      = (-0.204972176437445, 0.291845547964315)
  dW1[j] = h1[j] dz1_1 + h2[j] dz1_2
  dW1[0] = 0.679178699175393*(-0.204972176437445) + 0.450166002687522*0.291845547964315
         = -0.139212736159933 + 0.131378943729245 = -0.00783379243068809
  dW1[1] = 0.622459331201855*(-0.204972176437445) + 0.354343693774205*0.291845547964315
         = -0.127586843860241 + 0.103413629477232 = -0.0241732143830086
  db1    = -0.204972176437445 + 0.291845547964315 = 0.0868733715268697
  dh[j]  = dz1 * W1[j]:  sample 1 (-0.143480523506212, 0.102486088218723)
                         sample 2 ( 0.204291883575021, -0.145922773982158)
  dz0[j] = dh[j] * h[j] (1 - h[j]), with h (1 - h):
           sample 1 (0.217894993761814, 0.235003712201594)
           sample 2 (0.247516572711860, 0.228784240456657)
         sample 1: (-0.143480523506212*0.217894993761814, 0.102486088218723*0.235003712201594)
                 = (-0.0312636877743278, 0.0240846111804199)
         sample 2: (0.204291883575021*0.247516572711860, -0.145922773982158*0.228784240456657)
                 = (0.0505656268553394, -0.0333848310108364)
  dW0[i, j] = x1[i] dz0_1[j] + x2[i] dz0_2[j]
  dW0[0, 0] = 1*(-0.0312636877743278) + 0.5*0.0505656268553394
            = -0.0312636877743278 + 0.0252828134276697 = -0.00598087434665813
  dW0[0, 1] = 1*0.0240846111804199 + 0.5*(-0.0333848310108364)
            = 0.0240846111804199 - 0.0166924155054182 = 0.00739219567500174
  dW0[1, 0] = 2*(-0.0312636877743278) - 1*0.0505656268553394
            = -0.0625273755486557 - 0.0505656268553394 = -0.113093002403995
  dW0[1, 1] = 2*0.0240846111804199 - 1*(-0.0333848310108364)
            = 0.0481692223608399 + 0.0333848310108364 = 0.0815540533716763
  db0 = (-0.0312636877743278 + 0.0505656268553394, 0.0240846111804199 - 0.0333848310108364)
      = (0.0193019390810116, -0.00930021983041645)

One SGD step, p <- p - 0.5 * grad
  W0 = [[0.1 + 0.00299043717332906, -0.2 - 0.00369609783750087],
        [0.3 + 0.0565465012019975,   0.4 - 0.0407770266858381]]
     = [[0.102990437173329, -0.203696097837501],
        [0.356546501201998,  0.359222973314162]]
  b0 = (0.05 - 0.00965096954050579, -0.1 + 0.00465010991520823)
     = (0.0403490304594942, -0.0953498900847918)
  W1 = (0.7 + 0.00391689621534404, -0.5 + 0.0120866071915043)
     = (0.703916896215344, -0.487913392808496)
  b1 = 0.2 - 0.0434366857634348 = 0.156563314236565
"""
import numpy as np
import pytest

import fastbp as fb

X = [[1.0, 2.0], [0.5, -1.0]]
Y = [1.0, 0.0]
W0 = [[0.1, -0.2], [0.3, 0.4]]
B0 = [0.05, -0.1]
W1 = [[0.7], [-0.5]]
B1 = [0.2]

HIDDEN = [[0.679178699175393, 0.622459331201855], [0.450166002687522, 0.354343693774205]]
OUTPUT = [[0.590055647125109], [0.583691095928630]]
LOSS = 0.701933082892722
GRADIENTS = [
    [[-0.00598087434665813, 0.00739219567500174], [-0.113093002403995, 0.0815540533716763]],
    [0.0193019390810116, -0.00930021983041645],
    [[-0.00783379243068809], [-0.0241732143830086]],
    [0.0868733715268697],
]
AFTER_ONE_STEP = [
    [[0.102990437173329, -0.203696097837501], [0.356546501201998, 0.359222973314162]],
    [0.0403490304594942, -0.0953498900847918],
    [[0.703916896215344], [-0.487913392808496]],
    [0.156563314236565],
]
# float32: a few units in its last place (2**-24 ~ 6e-8) for values of order 1
TOL = {"float64": dict(rtol=1e-12, atol=1e-14), "float32": dict(rtol=2e-6, atol=2e-8)}
DTYPES = ["float64", "float32"]


def network(dtype, lr=0.5):
    model = fb.Sequential([fb.Dense(2, 2, activation="sigmoid"),
                           fb.Dense(2, 1, activation="sigmoid")], dtype=dtype)
    model.set_weights([W0, B0, W1, B1])
    model.compile(loss="binary_crossentropy", optimizer=fb.SGD(lr=lr))
    return model


@pytest.mark.parametrize("dtype", DTYPES)
def test_hidden_layer_values(dtype):
    first = fb.Sequential([fb.Dense(2, 2, activation="sigmoid")], dtype=dtype)
    first.set_weights([W0, B0])
    np.testing.assert_allclose(first.predict(X), HIDDEN, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_and_loss(dtype):
    model = network(dtype)
    np.testing.assert_allclose(model.predict(X), OUTPUT, **TOL[dtype])
    assert model.evaluate(X, Y) == pytest.approx(LOSS, rel=TOL[dtype]["rtol"])


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_gradient(dtype):
    model = network(dtype)
    loss, grads = model.compute_gradients(X, Y)
    assert loss == pytest.approx(LOSS, rel=TOL[dtype]["rtol"])
    for name, grad, expected in zip(["dW0", "db0", "dW1", "db1"], grads, GRADIENTS):
        np.testing.assert_allclose(grad, expected, err_msg=name, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_weights_after_one_sgd_step(dtype):
    model = network(dtype)
    history = model.fit(X, Y, epochs=1, batch_size=2, shuffle=False, verbose=0)
    # the epoch's loss is the loss before the step
    assert history.history["loss"] == [pytest.approx(LOSS, rel=TOL[dtype]["rtol"])]
    for name, weight, expected in zip(["W0", "b0", "W1", "b1"], model.get_weights(),
                                      AFTER_ONE_STEP):
        np.testing.assert_allclose(weight, expected, err_msg=name, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_logit_output_trains_identically(dtype):
    """The same network with no output activation: predict returns the logits z1 worked
    out above, and the step is the same (BCE fuses the sigmoid either way)."""
    model = fb.Sequential([fb.Dense(2, 2, activation="sigmoid"), fb.Dense(2, 1)], dtype=dtype)
    model.set_weights([W0, B0, W1, B1])
    model.compile(loss="binary_crossentropy", optimizer=fb.SGD(lr=0.5))
    np.testing.assert_allclose(model.predict(X), [[0.364195423821848], [0.337944354994163]],
                               **TOL[dtype])
    model.fit(X, Y, epochs=1, batch_size=2, shuffle=False, verbose=0)
    for weight, expected in zip(model.get_weights(), AFTER_ONE_STEP):
        np.testing.assert_allclose(weight, expected, **TOL[dtype])
