"""MCM scores: properties (hypothesis) and direct computations by hand."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from mcdo import ood

cosines = arrays(np.float64, st.tuples(st.integers(1, 5), st.integers(2, 40)), elements=st.floats(-1, 1))


@given(cosines, st.floats(0.1, 200), st.floats(-30, 30))
@settings(max_examples=80, deadline=None)
def test_softmax_mcm_ignores_the_bias_and_sigmoid_keeps_it(cos, scale, bias):
    assert np.allclose(ood.softmax_mcm(scale * cos + bias), ood.softmax_mcm(scale * cos), atol=1e-12)
    k = cos.shape[1]
    assert np.all(ood.softmax_mcm(scale * cos) >= 1.0 / k - 1e-12)  # the forced winner
    sig = ood.sigmoid_mcm(cos, scale, bias)
    assert np.all((sig >= 0) & (sig <= 1))
    if bias > 1:
        assert np.all(ood.sigmoid_mcm(cos, scale, bias) >= ood.sigmoid_mcm(cos, scale, 0.0))


def test_scores_by_hand():
    cos = np.array([[0.1, 0.3, -0.2]])
    e = np.exp(cos / 1.0)
    assert ood.softmax_mcm(cos)[0] == pytest.approx(e.max() / e.sum())
    assert ood.sigmoid_mcm(cos, 10.0, -10.0)[0] == pytest.approx(1 / (1 + np.exp(-(10 * 0.3 - 10))))
    assert ood.energy(cos, 10.0)[0] == pytest.approx(np.log(np.exp(10 * cos).sum()))
    assert ood.max_logit(cos, 10.0, -1.0)[0] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="logit_bias"):
        ood.ood_score("sigmoid", cos, 10.0, None)
    with pytest.raises(ValueError, match="unknown OOD score"):
        ood.ood_score("msp", cos, 10.0, None)


@given(st.integers(0, 2**16), st.floats(1.0, 20.0), st.floats(-10.0, 0.0))
@settings(max_examples=60, deadline=None)
def test_sigmoid_mcm_ranks_images_as_max_cosine_does(seed, scale, bias):
    """sigmoid is increasing, so max_k sigmoid(s cos_k + b) = sigmoid(s max_k cos_k + b): for s > 0 the learned
    bias and scale cannot change any rank-based figure (AUROC, FPR95, AUPR) of sigmoid MCM."""
    from mcdo import stats as S

    rng = np.random.default_rng(seed)
    cos = rng.uniform(-0.3, 0.5, (60, 20))  # |scale * cos + bias| <= 20: no float64 saturation
    labels = np.r_[np.ones(30), np.zeros(30)]
    sig, maxcos = ood.sigmoid_mcm(cos, scale, bias), cos.max(axis=1)
    assert np.array_equal(np.argsort(sig, kind="stable"), np.argsort(maxcos, kind="stable"))
    assert S.detection_summary(sig, labels) == S.detection_summary(maxcos, labels)
    assert S.detection_summary(sig, labels) == S.detection_summary(ood.max_logit(cos, scale, bias), labels)
