/* optim.c -- SGD and Adam/AdamW as one in-place pass over a flat buffer, following
 * torch.optim's single-tensor implementations operation by operation (formulas: kernels.h).
 * Hyper-parameters arrive as double, as Python floats do; per-step scalars such as the bias
 * corrections are computed in double (as torch computes them in Python), then rounded once to
 * the element type. */
#include "fastbp.h"

#ifndef REAL
#define FBP_TEMPLATE_FILE "optim.c"
#include "template.h"
#else

FBP_DISPATCH
void FBP(sgd_step)(ptrdiff_t n, REAL *restrict param, const REAL *restrict grad,
                   REAL *restrict velocity, double lr, double momentum, int nesterov,
                   double weight_decay)
{
    const REAL lr_ = (REAL)lr, mu = (REAL)momentum, wd = (REAL)weight_decay;
    /* As torch, no decay term at all when weight_decay is 0 (an infinite parameter stays
     * infinite instead of becoming inf * 0 = NaN); the branch is hoisted out of the loops. */
    if (momentum == 0) {
        for (ptrdiff_t i = 0; i < n; i++)
            param[i] -= lr_ * (wd != 0 ? grad[i] + wd * param[i] : grad[i]);
        return;
    }
    /* A zero velocity makes the first step v = g, as torch's clone of the first gradient. */
    for (ptrdiff_t i = 0; i < n; i++) {
        const REAL g = wd != 0 ? grad[i] + wd * param[i] : grad[i];
        const REAL v = mu * velocity[i] + g;
        velocity[i] = v;
        param[i] -= lr_ * (nesterov ? g + mu * v : v);
    }
}

FBP_DISPATCH
void FBP(adam_step)(ptrdiff_t n, REAL *restrict param, const REAL *restrict grad,
                    REAL *restrict m, REAL *restrict v, int64_t t, double lr, double beta1,
                    double beta2, double eps, double weight_decay, int decoupled)
{
    const double bias_correction1 = 1.0 - pow(beta1, (double)t);
    const double bias_correction2_sqrt = sqrt(1.0 - pow(beta2, (double)t));
    const REAL step_size = (REAL)(lr / bias_correction1);
    const REAL bc2_sqrt = (REAL)bias_correction2_sqrt;
    const REAL w1 = (REAL)(1.0 - beta1), b2 = (REAL)beta2, w2 = (REAL)(1.0 - beta2);
    const REAL eps_ = (REAL)eps;
    /* Adam adds weight_decay * p to the gradient; AdamW shrinks p by (1 - lr * weight_decay). */
    const REAL l2 = decoupled ? (REAL)0 : (REAL)weight_decay;
    const REAL shrink = decoupled ? (REAL)(1.0 - lr * weight_decay) : (REAL)1;
    for (ptrdiff_t i = 0; i < n; i++) { /* no decay terms when weight_decay is 0, as torch */
        const REAL p = shrink != 1 ? param[i] * shrink : param[i];
        const REAL g = l2 != 0 ? grad[i] + l2 * p : grad[i];
        /* m = lerp(m, g, 1 - beta1), written as torch's lerp writes it */
        const REAL mi = w1 < (REAL)0.5 ? m[i] + w1 * (g - m[i]) : g - (g - m[i]) * ((REAL)1 - w1);
        const REAL vi = v[i] * b2 + w2 * g * g;
        m[i] = mi;
        v[i] = vi;
        param[i] = p - step_size * mi / (sqrt(vi) / bc2_sqrt + eps_);
    }
}

void FBP(optimizer_step)(fbp_optimizer *opt, ptrdiff_t n, REAL *param, const REAL *grad)
{
    opt->step += 1;
    if (opt->kind == FBP_ADAM)
        FBP(adam_step)(n, param, grad, (REAL *)opt->state1, (REAL *)opt->state2, opt->step,
                       opt->lr, opt->beta1, opt->beta2, opt->eps, opt->weight_decay,
                       opt->decoupled_weight_decay);
    else
        FBP(sgd_step)(n, param, grad, (REAL *)opt->state1, opt->lr, opt->momentum,
                      opt->nesterov, opt->weight_decay);
}

#endif /* REAL */
