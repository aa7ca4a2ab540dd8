"""What a scan's summary needs, accumulated over its blocks: status counts, the 1-df
statistics for lambda_GC, and the top hits."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
from numpy.typing import NDArray

from glimix_cli.model.stats import genomic_inflation
from glimix_cli.pipeline.scan import BlockResult

F = NDArray[np.float64]
#: Top hits the summary lists.
N_TOP = 5


class ScanTally:
    """Accumulates status counts, lambda_GC inputs and the top hits over blocks."""

    def __init__(self, variants: Any) -> None:
        self.counts: Counter[str] = Counter()
        self.chisq: list[F] = []
        self.common: list[F] = []
        #: (neg_log10_p, .bim row, beta, se), best first
        self.top: list[tuple[float, int, float, float]] = []
        self.n_imputed = 0
        self.variants = variants

    def add(self, idx: NDArray[np.intp], r: BlockResult) -> None:
        st = np.asarray(r.status, dtype=object)
        self.counts.update(st.tolist())
        good = st == "ok"
        self.chisq.append(r.lrt[good])
        self.common.append(r.lrt[good & (r.maf >= 0.05)])
        self.n_imputed += r.n_imputed
        for j in np.flatnonzero(good):
            if len(self.top) < N_TOP or r.nlp[j] > self.top[-1][0]:
                self.top.append((float(r.nlp[j]), int(idx[j]), float(r.beta[j]),
                                 float(r.se[j])))
                self.top.sort(key=lambda t: -t[0])
                del self.top[N_TOP:]

    def lambda_gc(self) -> tuple[float, float]:
        """lambda_GC of all tested variants and of those with MAF >= 5%."""
        all_c = np.concatenate(self.chisq) if self.chisq else np.empty(0)
        com_c = np.concatenate(self.common) if self.common else np.empty(0)
        return genomic_inflation(all_c), genomic_inflation(com_c)

    def top_hits(self) -> list[dict[str, Any]]:
        v = self.variants
        return [{"variant_id": str(v["variant_id"].iat[i]), "chromosome": str(v["chrom"].iat[i]),
                 "base_pair_location": int(v["pos"].iat[i]), "beta": beta, "se": se,
                 "neg_log10_p": nlp}
                for nlp, i, beta, se in self.top]
