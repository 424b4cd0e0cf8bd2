"""Models of the results so far, for choosing trials: a small Gaussian process and its acquisition rules.

- :mod:`.features`: trials as model inputs (unit coordinates, choice indices), results as targets;
- :mod:`.gp`: a Matérn 5/2 Gaussian process with per-dimension length-scales, fitted by MAP;
- :mod:`.acquisition`: Thompson sampling and expected improvement over a set of candidates.

Pure numerics (numpy, scipy), deterministic for given inputs and seeds.
"""

from __future__ import annotations

from core.search.models.acquisition import expected_improvement, thompson
from core.search.models.features import categorical, encode, targets
from core.search.models.gp import GaussianProcess, fit_gp

__all__ = [
    "GaussianProcess",
    "fit_gp",
    "thompson",
    "expected_improvement",
    "categorical",
    "encode",
    "targets",
]
