"""mcdo.bayes against independent references: Monte Carlo, dense Kronecker algebra, autograd, naive loops."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mcdo.bayes import active, kfac
from mcdo.bayes.laplace import KFACPosterior, kron_logdet
from mcdo.bayes.probcosine import cosine_mc, cosine_moments, cosine_moments_eigen, probit_probs
from mcdo.models.heads import ProjectionFeatures


def _spd(rng, d, scale=1.0):
    a = rng.normal(size=(d, d))
    return scale * (a @ a.T / d + 0.1 * np.eye(d))


@settings(max_examples=12, deadline=None)
@given(d=st.integers(2, 24), seed=st.integers(0, 2**16), rel=st.floats(0.01, 0.5))
def test_exact_moments_inside_probcosine_match_monte_carlo(d, seed, rel):
    """E[x.y], Var[x.y] and E|x|^2 (exact for independent Gaussians) against 40k draws, within 4.5 SE."""
    rng = np.random.default_rng(seed)
    mx, my = rng.normal(size=d), rng.normal(size=d)
    sx, sy = _spd(rng, d, rel**2), _spd(rng, d, rel**2)
    x = rng.multivariate_normal(mx, sx, 40_000)
    y = rng.multivariate_normal(my, sy, 40_000)
    dots = np.sum(x * y, 1)
    var_dot = mx @ sy @ mx + my @ sx @ my + np.trace(sx @ sy)
    assert abs(dots.mean() - mx @ my) < 4.5 * dots.std() / 200
    se_var = math.sqrt(np.mean((dots - dots.mean()) ** 4) - dots.var() ** 2) / 200
    assert abs(dots.var() - var_dot) < 4.5 * se_var
    m, v = cosine_moments(*(torch.tensor(a)[None] for a in (mx, sx, my, sy)))
    ex2, ey2 = mx @ mx + np.trace(sx), my @ my + np.trace(sy)
    assert float(m) == pytest.approx((mx @ my) / math.sqrt(ex2 * ey2), rel=1e-10)
    assert float(v) == pytest.approx(var_dot / (ex2 * ey2), rel=1e-10)


def test_probcosine_is_accurate_for_near_orthogonal_pairs_and_not_for_parallel_ones():
    """The documented finding (BVL-01): fine at cos ~ 0, variance wildly overestimated at cos ~ 1."""
    rng = np.random.default_rng(0)
    d = 32
    mx = rng.normal(size=d)
    my = rng.normal(size=d)
    my -= (my @ mx) / (mx @ mx) * mx
    for target, ok in ((my, True), (1.5 * mx, False)):
        s = _spd(rng, d, 0.05**2 * (mx @ mx) / d)
        m, v = cosine_moments(*(torch.tensor(a)[None] for a in (mx, s, target, s)))
        mc = cosine_mc(mx, s, target, s, 100_000, seed=1)
        assert (abs(float(v) / mc["var"] - 1) < 0.05) is ok


def test_diagonal_probcosine_is_bayesvlms_formula():
    rng = np.random.default_rng(1)
    mx, my = torch.tensor(rng.normal(size=(4, 6))), torch.tensor(rng.normal(size=(3, 6)))
    vx, vy = torch.tensor(rng.uniform(0, 0.1, (4, 6))), torch.tensor(rng.uniform(0, 0.1, (3, 6)))
    m, v = cosine_moments(mx, vx, my, vy)
    md, vd = cosine_moments(mx, torch.diag_embed(vx), my, torch.diag_embed(vy))
    ex, ey = (mx**2 + vx).sum(1, keepdim=True), (my**2 + vy).sum(1, keepdim=True)
    ref_v = ((mx**2 + vx) @ vy.T + vx @ (my**2).T) / (ex * ey.T)  # BayesVLM's expression, written out
    torch.testing.assert_close(v, ref_v)
    torch.testing.assert_close(m, md)
    torch.testing.assert_close(v, vd)


def test_eigen_probcosine_matches_dense_covariances():
    rng = np.random.default_rng(2)
    d = 7
    qx, _ = np.linalg.qr(rng.normal(size=(d, d)))
    qy, _ = np.linalg.qr(rng.normal(size=(d, d)))
    cx, cy = rng.uniform(0, 0.2, (5, d)), rng.uniform(0, 0.2, (4, d))
    mx, my = rng.normal(size=(5, d)), rng.normal(size=(4, d))
    T = lambda a: torch.tensor(a)  # noqa: E731
    dense_x = np.stack([qx @ np.diag(c) @ qx.T for c in cx])
    dense_y = np.stack([qy @ np.diag(c) @ qy.T for c in cy])
    ref = cosine_moments(T(mx), T(dense_x), T(my), T(dense_y))
    got = cosine_moments_eigen(T(mx), T(qx), T(cx), T(my), T(qy), T(cy))
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b)
    diag = cosine_moments_eigen(T(mx), T(qx), T(cx), T(my), T(qy), T(cy), "diagonal")
    ref_d = cosine_moments(T(mx), T(np.diagonal(dense_x, axis1=1, axis2=2)), T(my),
                           T(np.diagonal(dense_y, axis1=1, axis2=2)))
    torch.testing.assert_close(diag[1], ref_d[1])


def test_probit_is_softmax_at_zero_variance_and_flattens_with_it():
    m = torch.tensor([[2.0, 0.0, -1.0]])
    torch.testing.assert_close(probit_probs(m, torch.zeros_like(m)), torch.softmax(m, -1))
    assert probit_probs(m, torch.full_like(m, 10.0)).max() < torch.softmax(m, -1).max()


def _posterior(rng, p=4, d=3, n=30):
    a = torch.tensor(rng.normal(size=(n, p)))
    e = torch.tensor(rng.normal(size=(n, d)))
    y = torch.tensor(rng.normal(size=(n, d)))
    fac = kfac.kfac_factors(a, e, y, "infonce", scale=5.0)
    return KFACPosterior(torch.tensor(rng.normal(size=(d, p))), fac, 0.7)


def test_posterior_covariance_sampling_and_logdet_against_dense_kronecker_algebra():
    rng = np.random.default_rng(3)
    post = _posterior(rng)
    A, B = post.factors.means()
    prec = post.count * torch.kron(A, B) + 0.7 * torch.eye(A.shape[0] * B.shape[0], dtype=torch.float64)
    cov = torch.linalg.inv(prec)
    torch.testing.assert_close(post.dense_covariance(), cov)
    assert post.log_det_precision() == pytest.approx(float(torch.logdet(prec)), rel=1e-10)
    a = torch.tensor(rng.normal(size=(2, 4)))
    qb, c = post.embedding_covariance(a)
    for i in range(2):  # Cov(W a) = (a' kron I) Sigma (a kron I)
        J = torch.kron(a[i][None], torch.eye(3, dtype=torch.float64))
        torch.testing.assert_close(qb @ torch.diag(c[i]) @ qb.T, J @ cov @ J.T)
    w = post.sample(20000, torch.Generator().manual_seed(0))
    emp = torch.cov((w - post.weight).transpose(1, 2).reshape(20000, -1).T)  # column-major vec
    assert (emp - cov).abs().max() < 0.05 * cov.diagonal().max()


def test_kron_logdet_identity_and_bayesvlms_swap():
    rng = np.random.default_rng(4)
    A, B = torch.tensor(_spd(rng, 5)), torch.tensor(_spd(rng, 3))
    dense = float(torch.logdet(torch.kron(A, B)))
    assert kron_logdet(A, B) == pytest.approx(dense, rel=1e-12)
    assert float(5 * torch.logdet(A) + 3 * torch.logdet(B)) != pytest.approx(dense, rel=1e-3)


def test_prior_precision_maximises_the_marginal_likelihood():
    post = _posterior(np.random.default_rng(5))
    lam = post.fit_prior_precision()
    grid = np.exp(np.linspace(math.log(lam) - 3, math.log(lam) + 3, 201))
    best = grid[np.argmax([post.log_marglik(g) for g in grid])]
    assert lam == pytest.approx(best, rel=0.05)


def test_kfac_factors_do_not_depend_on_chunking_and_split_class_batches():
    rng = np.random.default_rng(6)
    a, e, y = (torch.tensor(rng.normal(size=(50, k))) for k in (4, 3, 3))
    whole = kfac.kfac_factors(a, e, y, "sigmoid", 4.0, -1.0, class_batch=20, chunk=64)
    small = kfac.kfac_factors(a, e, y, "sigmoid", 4.0, -1.0, class_batch=20, chunk=3)
    torch.testing.assert_close(whole.B, small.B)
    naive = sum(kfac.embedding_ggn(e[s:s + 20], y[s:s + 20], "sigmoid", 4.0, -1.0).sum(0) for s in (0, 20, 40))
    torch.testing.assert_close(whole.B, naive)
    with pytest.raises(ValueError, match="likelihood"):
        kfac.kfac_factors(a, e, y, "poisson")


def test_bald_and_epig_match_naive_loops():
    rng = np.random.default_rng(7)
    pool = torch.tensor(rng.dirichlet(np.ones(3), size=(16, 5)))  # [S, N, C]
    target = torch.tensor(rng.dirichlet(np.ones(3), size=(16, 4)))
    H = lambda p: -sum(q * math.log(q) for q in p if q > 0)  # noqa: E731
    for n in range(5):
        ref = H(pool[:, n].mean(0).tolist()) - np.mean([H(pool[s, n].tolist()) for s in range(16)])
        assert float(active.bald(pool)[n]) == pytest.approx(ref, abs=1e-10)
        mis = []
        for m in range(4):
            joint = sum(torch.outer(pool[s, n], target[s, m]) for s in range(16)) / 16
            marg = torch.outer(pool[:, n].mean(0), target[:, m].mean(0))
            mis.append(float((joint * (joint / marg).log()).sum()))
        assert float(active.epig(pool, target)[n]) == pytest.approx(np.mean(mis), abs=1e-10)


def test_active_learning_runs_and_learns_with_labels():
    """On a separable toy, labels move the MAP: accuracy after 24 labels beats the starting point."""
    rng = np.random.default_rng(8)
    n, p, d, c = 300, 6, 4, 3
    centres = rng.normal(size=(c, p)) * 2
    labels = rng.integers(0, c, n)
    a = torch.tensor(centres[labels] + rng.normal(size=(n, p)))
    w0 = torch.tensor(rng.normal(size=(d, p))) * 0.1
    feats = ProjectionFeatures(a, a @ w0.T, torch.zeros(n, d, dtype=torch.float64))
    classes = torch.tensor(rng.normal(size=(c, d)))
    prior = KFACPosterior(w0, kfac.Factors(a[:50].T @ a[:50], torch.eye(d, dtype=torch.float64) * 50, 50), 1.0, 1.0)
    for strategy in active.STRATEGIES:
        curve = active.run(strategy, prior, feats[:200], labels[:200], feats[200:], labels[200:], classes, 10.0,
                           rounds=3, per_round=8, samples=16, targets=20, seed=0)
        assert curve.labels == [0, 8, 16, 24]
        assert curve.accuracy[-1] > curve.accuracy[0]


# ---- a wrong Laplace must fail here (issue 21): references written from the equations, not from mcdo's code ----

def _autograd_ggn_precision(w, a, r, y, likelihood, scale, bias, lam):
    """``sum_i J_i' H_i J_i + lam I`` over column-major ``vec(W)``: ``J_i`` the Jacobian of datum i's logits
    ``scale * cos(W a_i + r_i, y_c) (+ bias)`` by autograd, ``H_i`` the loss's Hessian in its logits."""
    d, p = w.shape
    yn = y / y.norm(dim=-1, keepdim=True)
    total = lam * torch.eye(d * p, dtype=torch.float64)
    for i in range(a.shape[0]):
        def logits(vec):
            e = vec.reshape(p, d).T @ a[i] + r[i]
            z = scale * (e / e.norm()) @ yn.T
            return z + bias if bias is not None else z
        vec = w.T.reshape(-1)  # column-major vec(W)
        jac = torch.autograd.functional.jacobian(logits, vec)  # [C, D*P]
        z = logits(vec)
        if likelihood == "infonce":
            pr = torch.softmax(z, 0)
            h = torch.diag(pr) - torch.outer(pr, pr)
        else:
            s = torch.sigmoid(z)
            h = torch.diag(s * (1 - s))
        total += jac.T @ h @ jac
    return total


@pytest.mark.parametrize("likelihood", ["infonce", "sigmoid"])
def test_laplace_precision_is_the_autograd_ggn_plus_the_prior(likelihood):
    """mcdo's exact-prior posterior on 6 pairs sharing one input (KFAC is then exact): its precision is the sum of
    the per-datum autograd GGNs plus lambda I. A Hessian scaled by sqrt(n) or n, a factor of the number of classes,
    a missing logit_scale^2 or a missing normalisation Jacobian each move it by O(1)."""
    rng = np.random.default_rng(3)
    d, p, n, scale, lam = 3, 4, 6, 7.0, 0.3
    bias = -1.5 if likelihood == "sigmoid" else None
    w = torch.tensor(rng.normal(size=(d, p)))
    a = torch.tensor(rng.normal(size=p)).expand(n, p).contiguous()
    r = torch.tensor(rng.normal(size=(n, d)))
    e = a @ w.T + r
    y = torch.tensor(rng.normal(size=(n, d)))
    fac = kfac.kfac_factors(a, e, y, likelihood, scale=scale, bias=bias)
    post = KFACPosterior(w, fac, lam, posterior="laplace")
    ref = _autograd_ggn_precision(w, a, r, y, likelihood, scale, bias, lam)
    assert torch.allclose(torch.linalg.inv(post.dense_covariance()), ref, rtol=1e-7, atol=1e-9)


def _authors_posterior(As, Bs, m, lam):
    """BayesVLM's covariance written from their ``_compute_covariance``: stored factors ``As = sum / sqrt(n)``
    scaled by ``sqrt(m)``, ``sqrt(lam) I`` added to each, both inverted; ``vec(W)`` column-major."""
    ia = torch.linalg.inv(As * math.sqrt(m) + math.sqrt(lam) * torch.eye(As.shape[0], dtype=torch.float64))
    ib = torch.linalg.inv(Bs * math.sqrt(m) + math.sqrt(lam) * torch.eye(Bs.shape[0], dtype=torch.float64))
    return torch.kron(ia, ib)


def _authors_evidence(As, Bs, m, lam, w2, n_params):
    """Their ``optimize_prior_precision`` objective: log prior minus ``p logdet(A~) + q logdet(B~)``, no 1/2."""
    At = As * math.sqrt(m) + math.sqrt(lam) * torch.eye(As.shape[0], dtype=torch.float64)
    Bt = Bs * math.sqrt(m) + math.sqrt(lam) * torch.eye(Bs.shape[0], dtype=torch.float64)
    return (-0.5 * lam * w2 + 0.5 * n_params * math.log(lam)
            - (At.shape[0] * torch.logdet(At) + Bt.shape[0] * torch.logdet(Bt)))


def _naive_adam(grad, x0, steps, lr, b1=0.9, b2=0.999, eps=1e-8):
    """Adam ascent written from Kingma & Ba's update rule (torch's defaults)."""
    x, m, v = x0, 0.0, 0.0
    for t in range(1, steps + 1):
        g = grad(x)
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        x = x + lr * (m / (1 - b1**t)) / (math.sqrt(v / (1 - b2**t)) + eps)
    return x


def test_bayesvlm_posterior_is_the_authors_formula():
    """The 'bayesvlm' posterior against the authors' equations on stored-style factors (sums / sqrt(n)): the
    covariance at their pseudo-count 10, their evidence (a 1/2 on the log-determinant, or the Kronecker identity's
    weights, would differ) and their Adam on log lambda."""
    rng = np.random.default_rng(5)
    p, d, n, m = 5, 3, 40, 10.0
    As, Bs = (torch.tensor(_spd(rng, k, 4.0)) for k in (p, d))
    w = torch.tensor(rng.normal(size=(d, p)))
    fac = kfac.Factors(As * math.sqrt(n), Bs * math.sqrt(n), n)
    post = KFACPosterior(w, fac, 2.5, posterior="bayesvlm")
    assert post.count == m * n
    assert torch.allclose(post.dense_covariance(), _authors_posterior(As, Bs, m, 2.5), rtol=1e-9, atol=1e-12)
    w2 = float((w**2).sum())
    for lam in (0.1, 2.5, 40.0):
        assert post.log_marglik(lam) == pytest.approx(float(_authors_evidence(As, Bs, m, lam, w2, d * p)), rel=1e-10)

    def grad(t):  # d evidence / d log lambda, by central differences of the authors' formula
        h = 1e-6
        return float(_authors_evidence(As, Bs, m, math.exp(t + h), w2, d * p)
                     - _authors_evidence(As, Bs, m, math.exp(t - h), w2, d * p)) / (2 * h)

    ref = math.exp(_naive_adam(grad, math.log(1500.0), 300, 1e-2))
    assert post.fit_prior_precision() == pytest.approx(ref, rel=1e-5)


@pytest.mark.parametrize("mu,var", [(2.0, 4.0), (-1.0, 9.0), (3.0, 1.0), (0.5, 16.0)])
def test_probit_matches_numerical_integration(mu, var):
    """MacKay's probit: the probability of a logit N(mu, var) against a fixed 0 logit is sigmoid(mu / sqrt(1 +
    pi/8 var)), close (0.02) to E[sigmoid] by quadrature; pi/3 in place of pi/8 misses by 0.05 or more here."""
    from scipy import integrate
    from scipy.special import expit

    sd = math.sqrt(var)
    exact = integrate.quad(lambda x: expit(x) * math.exp(-0.5 * ((x - mu) / sd) ** 2) / (sd * math.sqrt(2 * math.pi)),
                           mu - 12 * sd, mu + 12 * sd)[0]
    got = probit_probs(torch.tensor([[mu, 0.0]]), torch.tensor([[var, 0.0]]))[0, 0].item()
    assert abs(got - exact) < 0.02


def test_siglip_bias_enters_the_probit_logits():
    """The logit moments of ``scale * cos + bias`` against Monte Carlo draws of the cosine: the bias shifts the
    mean (dropping it moves a SigLIP logit by |b| ~ 10) and the probit of the shifted logits differs."""
    from mcdo.bayes.probcosine import logit_moments

    g = torch.Generator().manual_seed(0)
    cm, cv, s, b = torch.tensor([[0.1, -0.2]]), torch.tensor([[0.01, 0.04]]), 10.0, -10.0
    draws = s * (cm + cv.sqrt() * torch.randn((200_000, 1, 2), generator=g, dtype=cm.dtype)) + b
    mean, var = logit_moments(cm, cv, s, b)
    assert torch.allclose(mean, draws.mean(0), atol=0.01) and torch.allclose(var, draws.var(0), rtol=0.02)
    assert not torch.allclose(probit_probs(mean, var), probit_probs(*logit_moments(cm, cv, s, None)), atol=1e-3)


def test_published_factors_give_the_notebooks_prior_precisions():
    """On BayesVLM's published CLIP B-32 factors (skipped without MCDO_RECORDED_DIR): the |W|^2 implied by the
    stored fit makes the stored lambda a stationary point of the authors' evidence (written here from their
    formula, float64 logdet), and their optimiser at pseudo-count 10 lands on the notebook's printed lambdas
    (the registry's figures) within one Adam step."""
    import os
    from pathlib import Path

    from mcdo.bayes import published
    from mcdo.verify.records import expectation

    root = os.environ.get("MCDO_RECORDED_DIR")
    folder = Path(root or "/nonexistent") / "bayesvlm" / "clip-vit-b-32-laion2b"
    if not folder.is_dir():
        pytest.skip(f"no published BayesVLM factors at {folder} (set MCDO_RECORDED_DIR)")
    pub = published.load(folder)
    for mod, name in (("img", "image"), ("txt", "text")):
        fac, lam = pub.factors[mod], pub.stored[f"lambda_{mod}"]
        As, Bs = fac.A / math.sqrt(fac.n), fac.B / math.sqrt(fac.n)  # as stored
        w2 = published.implied_weight_norm(pub, mod)
        d = As.shape[0] * Bs.shape[0]
        h = 1e-4
        slope = (_authors_evidence(As, Bs, 1.0, lam * math.exp(h), w2, d)
                 - _authors_evidence(As, Bs, 1.0, lam * math.exp(-h), w2, d)) / (2 * h)
        assert abs(float(slope)) < 1e-3 * d
        post = published.posterior(pub, mod, "bayesvlm", w2, 10.0)
        want = expectation("BVL-03", f"lambda_{name}", "recorded").value
        assert post.fit_prior_precision() == pytest.approx(want, rel=0.01)
