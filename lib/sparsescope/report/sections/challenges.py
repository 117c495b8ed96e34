"""Challenges of Sparsification: the seed's four questions, answered with this run's measurements."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import facts as F
from ..facts import num, pct
from ..html import say, tidy
from .base import Parts, Section, after_colon
from .literature import LITERATURE


class Challenges(Section):
    def challenges(self) -> Parts:
        kl = F.kl_by_target(self.models)
        collapses = [(m.name, c) for m in self.models if len(m.per_matrix)
                     for c in [F.layer_collapse(m.per_matrix)] if len(c)]
        iterative = pd.concat(
            [F.iterative_runs(m.pruning) for m in self.models if len(m.pruning)] or [pd.DataFrame()]
        )
        alone, tied, cases = F.calibrated_count(self.models)
        facts = {
            "moves": self.kl_moves(kl),
            "collapse": F.collapse_lead(collapses) if collapses else "",
            "iterative": len(iterative),
            "calibrated": after_colon(F.calibrated_sentence(alone, tied, cases, self.calibrated_ran())),
            **self.size_answers(),
            **self.speed_answers(),
            "half_clause": F.half_sparsity_clause(kl),
            "gpu": any(len(F.rows_of(m.runtime, "kernel-2:4")) for m in self.models),
            "structured": s["span"] if (s := self.structured_speed()) else "",
        }
        words = say("challenges", **facts)
        parts = [("md", tidy(str(words)))]
        if not len(iterative):
            parts.append(("html", self.n.table(LITERATURE.set_index("how"), words.literature_caption())))
        fast = self.structured_speed()
        ending = words.conclusion({**facts, "fast": fast["span"] if fast else ""})
        return parts + ([("md", tidy(ending))] if ending.strip() != "## Conclusion" else [])

    @staticmethod
    def kl_moves(kl: pd.DataFrame) -> list[str]:
        """Per model, how far KL from dense ranges over the unstructured methods at 50%: (model, lowest,
        its method, highest, its method), as printed."""
        from ...pruning.structured import STRUCTURED

        # unstructured methods only: a structured run changes the model's shape, not its sparsity pattern
        half = kl[np.isclose(kl["target_sparsity"].astype(float), 0.5)
                  & ~kl["method"].isin(STRUCTURED)] if len(kl) else kl
        moves = []
        for model, g in half.groupby("model", sort=False) if len(half) else []:
            lo, hi = g.loc[g["value"].idxmin()], g.loc[g["value"].idxmax()]
            moves.append((model, num(lo["value"]), lo["method"], num(hi["value"]), hi["method"]))
        return moves

    def size_answers(self) -> dict:
        """Bytes at 50% against a 4-bit cast and a dense re-save, as shares of the dense file."""
        half_share, cast_share, beaten = [], [], 0
        for m in self.models:
            half_bytes = self._half_bytes(m)
            if half_bytes is None:
                continue
            dense_bytes = float(m.pruning["dense_bytes"].iloc[0])
            casts = F.size_baselines(m.dist.tensors)
            half_share.append(half_bytes / dense_bytes)
            cast_share.append(casts["4-bit"] / dense_bytes)
            beaten += casts["4-bit"] < half_bytes
        resaved = []
        for m in self.models:
            s = m.sizes
            if len(s) and "dense_save_bytes" in s:
                for _, r in s[F.column(s, "dense_save_bytes").notna()].iterrows():
                    resaved.append(float(r["dense_save_bytes"]) / float(r["dense_bytes"]))

        def share_range(xs: list[float]) -> str:
            same = round(min(xs), 3) == round(max(xs), 3)
            return pct(min(xs)) if same else f"{pct(min(xs))}–{pct(max(xs))}"

        return {
            "resaved": share_range(resaved) if resaved else "",
            "half_share": share_range(half_share) if half_share else "",
            "cast_share": share_range(cast_share) if cast_share else "",
            "beaten": int(beaten),
            "sized": len(half_share),
        }

    @staticmethod
    def readable_verdicts(rows: pd.DataFrame) -> dict:
        """How many timings' intervals can be read (recorded, not disturbed) and how many of those lie
        wholly below or above 1.0×: counts, never the extremes of point estimates."""
        spans = [F.speed_interval(r) for r in rows.to_dict("records")]
        readable = [s for s in spans if s is not None and not F.disturbed(s)]
        return {"timed": len(spans), "readable": len(readable), "slower": sum(s[1] < 1.0 for s in readable),
                "faster": sum(s[0] > 1.0 for s in readable)}

    def speed_answers(self) -> dict:
        """Dense kernels' verdict and the CSR crossovers over every model."""
        dk = pd.concat([F.rows_of(m.runtime, "dense-kernels") for m in self.models] or [pd.DataFrame()])
        csr_rt = pd.concat([F.rows_of(m.runtime, "kernel-csr") for m in self.models] or [pd.DataFrame()])
        cross = pd.concat([m.crossovers for m in self.models if len(m.crossovers)] or [pd.DataFrame()])
        found = (
            pd.to_numeric(cross[cross["kind"] == "kernel-csr"]["crossover_sparsity"],
                          errors="coerce").dropna()
            if len(cross)
            else pd.Series(dtype=float)
        )
        half_csr = csr_rt[np.isclose(csr_rt["sparsity"].astype(float), 0.5)] if len(csr_rt) else csr_rt
        return {
            "dense_held": F.all_hold_one(dk) if len(dk) else None,
            "dk_range": (
                F.span(dk["speedup"].astype(float).min(), dk["speedup"].astype(float).max(), "{:.2f}".format)
                + "×"
                if len(dk)
                else ""
            ),
            # the rows whose interval excludes 1.0, not every row's point estimate
            "dk_outside": ", ".join(
                f"{r.shape_or_model} {float(r.speedup):.2f}× "
                f"[{float(r.speedup_lo):.2f}, {float(r.speedup_hi):.2f}]"
                for r in dk.itertuples() if {"speedup_lo", "speedup_hi"} <= set(dk.columns)
                and (float(r.speedup_lo) > 1.0 or float(r.speedup_hi) < 1.0)
                and not F.disturbed(F.speed_interval(r._asdict()))) if len(dk) else "",
            "crossover": (F.span(found.min(), found.max(), "{:.0%}".format) if len(found) else ""),
            "crossover_measured": F.crossovers_measured(cross) if len(cross) else True,
            "timed_once": F.crossovers_timed_once(cross) if len(cross) else False,
            # the device the kernel sweep ran on (device_name: "cpu (N threads)" or the GPU's model)
            "kernel_device": "" if not len(csr_rt) or "device" not in csr_rt else "CPU " if csr_rt[
                "device"].astype(str).str.startswith("cpu").all() else "GPU ",
            "half_csr": self.readable_verdicts(half_csr) if len(half_csr) else None,
        }
