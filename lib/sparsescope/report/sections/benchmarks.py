"""Benchmarks: Size (bytes on disk against casts) and Runtime (latency ratios with their intervals)."""

from __future__ import annotations

import pandas as pd

from .. import facts as F
from ..facts import megabytes, pct
from ..html import render
from .base import Parts, Section


class Benchmarks(Section):
    def size(self) -> Parts:
        from ..plots import size_overview_figure

        data, rows, sentences, index_ratios = {}, {}, [], []
        for m in self.models:
            if not len(m.sizes) or not len(m.pruning):
                continue
            base = F.size_baselines(m.dist.tensors)
            dense = float(m.pruning["dense_bytes"].iloc[0])
            data[m.name] = (m.sizes, base, dense)
            dtype = ", ".join(sorted(m.dist.tensors["dtype"].unique()))
            col = {"dense file": dense, **{f"{k} cast (computed)": v for k, v in base.items()}}
            s = m.sizes
            for _, r in s.sort_values("achieved_sparsity").iterrows():
                if (
                    r["nm"] == ""
                    and r["method"] == "global_magnitude"
                    or r["nm"] != ""
                    and r["method"] == "nm_magnitude"
                ):
                    label = r["nm"] if r["nm"] else f"{float(r['target_sparsity']):.0%}"
                    col[f"compressed, {label} sparse"] = float(r["saved_bytes"])
            # one row per kind of file; the dense file's dtype in its own row, not in the row's name
            rows[m.name] = {"dense stored as": dtype, **{k: f"{megabytes(v)} ({pct(v / dense)})"
                                                          for k, v in col.items()}}
            excluded = F._json(m.dist.out_dir / "manifest.json").get("excluded", {})
            buffers = excluded.get("buffers (not weights)", [])
            sentences.append(F.beside_weights(m.dist.tensors, dense, buffers, m.name))
            ratios = F.column(s, "index_ratio")
            if ratios.notna().any():
                index_ratios.append((m.name, F.span(ratios.min(), ratios.max(), "{:.3f}".format) + "×"))
        if not data:
            return [("md", "No size results were found.")]
        parts = [
            ("md", render("size", sentences=F.casting_sentences(self.casting_cases()) + sentences,
                          index_ratios=F.shared_values(index_ratios, len(self.models)),
                          baselines=F.BASELINE_WORDS))
        ]
        parts.append(
            (
                "html",
                self.n.figure(
                    size_overview_figure(data),
                    "Left: bits per prunable weight spent on the positions of the kept weights, against "
                    "H(s), the entropy of an i.i.d. random mask of that density (the bound for such a mask, "
                    "not for these masks), and the 2:4 bound"
                    + (" (older results without the index column are left out)" if any(
                        F.column(s, "index_bits_per_weight").isna().all() for s, _, _ in data.values())
                       else "")
                    + ". Right: each compressed checkpoint as a share of its own dense file (whose dtype "
                    "Table " + str(self.n.tables + 1) + " gives), beside the same model cast to fp16, int8 "
                    "and 4-bit (computed from the parameter counts, not files written). Colour: model; "
                    "marker: method.",
                    "Scatter plots: index bits per weight against sparsity with the entropy bound; "
                    "checkpoint size as percent "
                    "of dense against sparsity for every model, with horizontal lines for fp16, int8 and "
                    "4-bit casts.",
                ),
            )
        )
        table = pd.DataFrame(rows).fillna("—")
        parts.append(
            (
                "html",
                self.n.table(
                    table,
                    "Bytes on disk: the dense file, the same model cast (computed), and "
                    "the compressed sparse checkpoints (global magnitude; N:M magnitude).",
                    note="Casts: " + "; ".join(F.BASELINE_WORDS.values()) + ".",
                ),
            )
        )
        return parts

    def runtime(self) -> Parts:
        from ..plots import runtime_figure

        parts = [
            (
                "md",
                "### Runtime\n\nEvery ratio is measured in one process, dense and sparse side by side after "
                "a "
                "warm-up; the prose calls a change only where its 95% interval excludes 1.0×.",
            )
        ]
        settings = []
        for m in self.models:
            rt = m.runtime
            if not len(rt):
                parts.append(("md", f"#### {m.name}\n\nNo runtime results were found."))
                continue
            # a speech model's whole-model input is log-mel frames (Whisper: 3000 for 30 s), not tokens
            scored = set(m.quality["metric"]) if "metric" in m.quality else set()
            unit = "log-mel frames" if {"wer", "token_loss"} & scored else "tokens"
            e2e = F.e2e_words(rt, "dense-kernels", unit)
            csr_e2e = F.e2e_words(rt, "sparse-kernels-e2e", unit)
            structured = (F.e2e_words(rt, "structured-prefill", unit)
                          + F.e2e_words(rt, "structured-decode", unit))
            gpu = F.rows_of(rt, "kernel-2:4")
            facts = {
                "model": m.name,
                "dense_kernels": e2e,
                "csr_e2e": csr_e2e,
                "structured": structured,
                "crossovers": F.crossover_words(m.crossovers, rt),
                "crossovers_measured": F.crossovers_measured(m.crossovers),
                "bsr": F.bsr_sentence(rt),
                "gpu": (
                    f"{gpu['speedup'].astype(float).min():.2f}–{gpu['speedup'].astype(float).max():.2f}× "
                    f"over dense on {gpu['device'].iloc[0]}"
                )
                if len(gpu)
                else "",
                "missing": F.not_measured(rt, m.pruning),
                "device": rt["device"].iloc[0] if "device" in rt else "?",
                "repeats": int(F.column(rt, "repeats").max())
                if F.column(rt, "repeats").notna().any()
                else None,
                "interleaved": bool("interleaved" in rt and (rt["interleaved"] != "").any()),
                "unit": unit,
            }
            settings.append((m, rt, facts))
        # the measuring setup, said once when every model shares it, else under each model
        shared = len({(f["device"], f["repeats"], f["interleaved"]) for _, _, f in settings}) == 1
        if shared and settings:
            parts[0] = ("md", parts[0][1] + "\n\n" + render("runtime_setting", **settings[0][2]))
        for m, rt, facts in settings:
            parts.append(("md", render("runtime", **facts, setting_said=shared)))
            parts.append(
                (
                    "html",
                    self.n.figure(
                        runtime_figure(rt, f"{m.name}: speedup over dense on {facts['device']}", m.pruning,
                                       facts["unit"]),
                        f"{m.name}: CSR (solid) and BSR (dashed) kernels against dense per matrix shape, one "
                        "panel per tokens "
                        "per batch, and the whole model; one y-range for all panels; bars are 95% intervals "
                        "where recorded. "
                        "What was not measured is listed under the panels.",
                        f"Speedup over dense against sparsity for the matrix shapes of {m.name}, per tokens "
                        "per batch, and "
                        "whole-model speedups.",
                    ),
                )
            )
        return parts
