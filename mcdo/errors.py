"""Typed errors that say what is missing and how to supply it."""
from __future__ import annotations


class MissingResource(RuntimeError):
    """A weight, data set or device a claim needs is absent. Test runs turn it into a skip.

    ``what`` names the missing piece; ``how`` says how to supply it.
    """

    def __init__(self, what: str, how: str):
        self.what, self.how = what, how
        super().__init__(f"{what}: {how}")


class MissingWeights(MissingResource):
    """Pretrained weights are not in the local cache and downloading is not allowed."""


class MissingData(MissingResource):
    """A data set is not where the harness looks for it."""
