"""Benchmarks: Size (bytes on disk against casts) and Runtime (latency ratios with their intervals)."""

from __future__ import annotations

import math

import pandas as pd

from .. import facts as F
from ..facts import megabytes, pct
from ..html import say, tidy
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
        words = say("size")
        if not data:
            return [("md", words.none_found())]
        # the table is numbered first, so the figure's caption names its number; it is shown after the figure
        table = self.n.table(pd.DataFrame(rows).fillna("—"), words.table_caption(),
                             note=words.table_note(F.BASELINE_WORDS))
        older = any(F.column(s, "index_bits_per_weight").isna().all() for s, _, _ in data.values())
        return [
            ("md", tidy(words.body(F.casting_sentences(self.casting_cases()) + sentences,
                                       F.shared_values(index_ratios, len(self.models)), F.BASELINE_WORDS))),
            ("html", self.n.figure(size_overview_figure(data), words.figure_caption(older, self.n.tables),
                                   words.figure_alt())),
            ("html", table),
        ]

    def runtime(self) -> Parts:
        from ..plots import runtime_figure
        from ..plots.runtime import speed_range

        words = say("runtime")
        parts = [("md", words.intro())]
        settings = []
        for m in self.models:
            rt = m.runtime
            if not len(rt):
                parts.append(("md", words.none_found(m.name)))
                continue
            settings.append((m, rt, self.runtime_facts(m)))
        # the measuring setup, said once when every model shares it, else under each model
        shared = len({(f["device"], f["repeats"], f["interleaved"]) for _, _, f in settings}) == 1
        if shared and settings:
            parts[0] = ("md", tidy(parts[0][1] + "\n\n" + words.setting(settings[0][2])))
        for m, rt, facts in settings:
            # the crossover table is numbered first, so the paragraph names it; it is shown after the figure
            table = self.crossover_table(m.crossovers)
            crossovers = self.n.table(table, words.crossover_caption(
                m.name, F.crossovers_measured(m.crossovers))) if len(table) else ""
            facts["crossover_table"] = self.n.tables if crossovers else None
            parts.append(("md", tidy(words.model(facts, shared))))
            figure = runtime_figure(rt, words.figure_title(m.name, facts["device"]), m.pruning, facts["unit"],
                                    ylim=speed_range([s[1] for s in settings]))
            parts.append(("html", self.n.figure(figure, words.figure_caption(m.name),
                                                words.figure_alt(m.name))))
            if crossovers:
                parts.append(("html", crossovers))
        return parts

    @staticmethod
    def crossover_table(crossovers: pd.DataFrame) -> pd.DataFrame:
        """Kernel and matrix shape by tokens per batch: the measured sparsity from which the sparse kernel
        wins at it and every measured sparsity above ("never": not up to the highest measured)."""
        if not len(crossovers) or "crossover_sparsity" not in crossovers:
            return pd.DataFrame()

        def cell(r) -> str:
            if r.get("rule") == "one repeat":
                return "timed once"
            at = pd.to_numeric(pd.Series([r["crossover_sparsity"]]), errors="coerce").iloc[0]
            measured = [float(x) for x in str(r.get("measured_sparsities", "")).split()]
            return f"{at:.0%}" if at == at else f"never (to {max(measured):.0%})" if measured else "never"

        rows = crossovers.assign(kernel=crossovers["kind"].str.replace("kernel-", "").str.upper(),
                                 cell=[cell(r) for r in crossovers.to_dict("records")],
                                 size=[math.prod(int(d) for d in str(s).split("x") if d.isdigit())
                                       for s in crossovers["shape_or_model"]])
        table = rows.sort_values(["kernel", "size", "tokens"]).pivot_table(
            index=["kernel", "shape_or_model"], columns="tokens", values="cell", aggfunc="first", sort=False)
        table.columns = [F.plural(int(n), "token") + " per batch" for n in table.columns]
        return table.rename_axis(["kernel", "matrix shape"]).fillna("—")

    def runtime_facts(self, m) -> dict:
        """What one model's runtime rows say: whole-model and per-matrix speedups, crossovers, the setup."""
        rt = m.runtime
        # a speech model's whole-model input is log-mel frames (Whisper: 3000 for 30 s), not tokens
        scored = set(m.quality["metric"]) if "metric" in m.quality else set()
        unit = "log-mel frames" if {"wer", "token_loss"} & scored else "tokens"
        gpu = F.rows_of(rt, "kernel-2:4")
        repeats = F.column(rt, "repeats")
        return {
            "model": m.name,
            "dense_kernels": F.e2e_words(rt, "dense-kernels", unit),
            "csr_e2e": F.e2e_words(rt, "sparse-kernels-e2e", unit),
            "structured": (F.e2e_words(rt, "structured-prefill", unit)
                           + F.e2e_words(rt, "structured-decode", unit)),
            "crossovers": F.crossover_words(m.crossovers, rt),
            "crossovers_measured": F.crossovers_measured(m.crossovers),
            "bsr": F.bsr_sentence(rt),
            "gpu": say("runtime").gpu(gpu["speedup"].astype(float).min(), gpu["speedup"].astype(float).max(),
                                          gpu["device"].iloc[0]) if len(gpu) else "",
            "missing": F.not_measured(rt, m.pruning),
            "device": rt["device"].iloc[0] if "device" in rt else "?",
            "repeats": int(repeats.max()) if repeats.notna().any() else None,
            "interleaved": bool("interleaved" in rt and (rt["interleaved"] != "").any()),
            "unit": unit,
        }
