"""BVL-03 on the recorded tier: BayesVLM's own posterior from its published KFAC factors (CLIP B-32, LAION-2B).

The files (``$MCDO_RECORDED_DIR/bayesvlm/clip-vit-b-32-laion2b``, recorded/PROVENANCE.md) hold the factors the
authors estimated on 327,680 LAION-400M pairs and the prior precisions their script fitted at pseudo-count 1. Their
notebook builds the posterior it evaluates on Food-101 at pseudo-count 10 and prints its prior precisions. The
stored fit fixes the one fact about the weights the evidence uses (``|W|^2``, ``bayes.published``), so the
notebook's lambdas are a prediction from the published files in the authors' configuration: if the posterior the
claim's figures come from is the one described, they must follow. Each record also carries what mcdo's exact-prior
``laplace`` posterior makes of the same factors (its lambda and its variance per direction, as a ratio).
"""
from __future__ import annotations

from ... import env
from ...bayes import published
from ..engine import Context, evaluates
from ..records import Record, decide
from ..sources import SOURCE

FOLDER = ("bayesvlm", "clip-vit-b-32-laion2b")


@evaluates("BVL-03", "recorded")
def bvl03_recorded(ctx: Context) -> list[Record]:
    """The notebook's prior precision per projection, predicted from the published factors."""
    folder = env.recorded_dir().joinpath(*FOLDER)
    pub = ctx.cached("bvl/recorded/published", lambda: published.load(folder))
    source = SOURCE["BVL-03"]
    summary = ctx.cached("bvl/recorded/summary", lambda: published.summary(pub, source["multiplier"]))
    out = []
    for modality, row in summary.items():
        lam = row["lambda_bayesvlm"]
        d = decide("BVL-03", f"lambda_{modality}", (lam, lam), "recorded")
        q = row["ratio"]
        out.append(Record(
            "BVL-03", "recorded", f"{pub.name} {modality} projection", d.verdict, lam, (lam, lam),
            expected=f"lambda at pseudo-count {source['multiplier']:g} = {d.expected}",
            reason=(f"the authors' evidence and Adam (300 steps, lr 1e-2, from 1500) on the published factors "
                    f"({pub.factors['img'].n:,} pairs) give {lam:.3f}; the stored fit ({row['stored_lambda']:.3f} at "
                    f"pseudo-count {row['stored_count']:g}, refit from their script's start: "
                    f"{row['lambda_refit_stored']:.3f}) implies |W|^2 = {row['weight_norm2']:.3f}; an exact figure, so "
                    f"the interval is the point; {d.note}. mcdo's laplace posterior on the same factors: lambda "
                    f"{row['lambda_laplace']:.4g} at N = n, embedding variance {row['total_ratio']:.3g}x the "
                    f"authors' in total ({q['min']:.3g}-{q['max']:.3g}x per direction, median {q['median']:.3g}x)"),
            config=dict(posterior="bayesvlm", multiplier=source["multiplier"], model=pub.name,
                        hessian=source["hessian"], files="/".join(FOLDER)),
            details=row))
    return out
