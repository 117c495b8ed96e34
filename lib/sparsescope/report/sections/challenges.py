"""Challenges of Sparsification: the seed's four questions, answered with this run's measurements."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import facts as F
from ..facts import num, pct
from ..html import render
from .base import Parts, Section, after_colon
from .literature import LITERATURE


class Challenges(Section):
    def challenges(self) -> Parts:
        kl = F.kl_by_target(self.models)
        half = kl[np.isclose(kl["target_sparsity"].astype(float), 0.5)] if len(kl) else kl
        moves = []
        for model, g in half.groupby("model", sort=False) if len(half) else []:
            lo, hi = g.loc[g["value"].idxmin()], g.loc[g["value"].idxmax()]
            moves.append(
                f"{model} {num(lo['value'])} for every unstructured method"
                if num(lo["value"]) == num(hi["value"]) else
                f"{model} {num(lo['value'])} ({lo['method']}) to {num(hi['value'])} ({hi['method']})"
            )
        collapses = [(m, F.layer_collapse(m.per_matrix)) for m in self.models if len(m.per_matrix)]
        collapses = [(m, c) for m, c in collapses if len(c)]
        named = [(m.name, c) for m, c in collapses]
        collapse = F.collapse_lead(named) if named else ""
        iterative = pd.concat(
            [F.iterative_runs(m.pruning) for m in self.models if len(m.pruning)] or [pd.DataFrame()]
        )
        alone, tied, cases = F.calibrated_count(self.models)
        dk = pd.concat([F.rows_of(m.runtime, "dense-kernels") for m in self.models] or [pd.DataFrame()])
        held = F.all_hold_one(dk) if len(dk) else None
        csr_rt = pd.concat([F.rows_of(m.runtime, "kernel-csr") for m in self.models] or [pd.DataFrame()])
        cross = pd.concat([m.crossovers for m in self.models if len(m.crossovers)] or [pd.DataFrame()])
        found = (
            pd.to_numeric(
                cross[cross["kind"] == "kernel-csr"]["crossover_sparsity"], errors="coerce"
            ).dropna()
            if len(cross)
            else pd.Series(dtype=float)
        )
        half_csr = csr_rt[np.isclose(csr_rt["sparsity"].astype(float), 0.5)] if len(csr_rt) else csr_rt
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

        facts = {
            "moves": moves,
            "collapse": collapse,
            "iterative": len(iterative),
            "calibrated": after_colon(F.calibrated_sentence(alone, tied, cases, self.calibrated_ran())),
            "resaved": share_range(resaved) if resaved else "",
            "half_share": share_range(half_share) if half_share else "",
            "cast_share": share_range(cast_share) if cast_share else "",
            "beaten": int(beaten),
            "sized": len(half_share),
            "dense_held": held,
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
                and (float(r.speedup_lo) > 1.0 or float(r.speedup_hi) < 1.0)) if len(dk) else "",
            "crossover": (F.span(found.min(), found.max(), "{:.0%}".format) if len(found) else ""),
            "crossover_measured": F.crossovers_measured(cross) if len(cross) else True,
            "timed_once": F.crossovers_timed_once(cross) if len(cross) else False,
            # the device the kernel sweep ran on (device_name: "cpu (N threads)" or the GPU's model)
            "kernel_device": "" if not len(csr_rt) or "device" not in csr_rt else "CPU " if csr_rt[
                "device"].astype(str).str.startswith("cpu").all() else "GPU ",
            "half_csr": (
                F.span(half_csr["speedup"].astype(float).min(), half_csr["speedup"].astype(float).max())
                + "×"
                if len(half_csr)
                else ""
            ),
            "half_clause": F.half_sparsity_clause(kl),
            "gpu": any(len(F.rows_of(m.runtime, "kernel-2:4")) for m in self.models),
        }
        parts = [("md", render("challenges", **facts))]
        if not len(iterative):
            parts.append(
                (
                    "html",
                    self.n.table(
                        LITERATURE.set_index("how"),
                        "One-shot against iterative pruning in the "
                        "literature (not measured here; figures as the papers report them).",
                    ),
                )
            )
        return parts
