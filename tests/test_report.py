"""The report as a reader meets it: wording that respects noise, conclusions printed only where the data hold
them (each tested where it holds and where it does not), figures that survive any subset of runs and keep
numeric order, and rendered pages with no clipped table and no empty page."""
import json
import re
import shutil
import subprocess
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")

from sparsescope.evaluation.runtime import timing_row  # noqa: E402
from sparsescope.report import facts as F  # noqa: E402
from sparsescope.report.plots import layer_sparsity_heatmap, runtime_figure  # noqa: E402

A4_WIDTH_PT, MARGIN_PT = 595.28, 12 / 25.4 * 72  # print.css: A4, 12 mm left and right


# ------------------------------------------------------------------------------------------- noise
def test_an_interval_holding_one_reads_no_measurable_change():
    rng = np.random.default_rng(0)
    dense = 100 + rng.normal(0, 8, 9)
    sparse = list(dense[::-1] * 1.01)  # the same noisy timings, reordered, 1% slower: noise, not an effect
    dense = list(dense)
    row = timing_row(dense, sparse)
    assert row["speedup_lo"] < 1 < row["speedup_hi"]
    assert F.speed_words(row["speedup"], F.speed_interval(row)).startswith("no measurable change")
    assert "no change" in F.speed_cell(row["speedup"], F.speed_interval(row))


def test_a_clear_speedup_and_a_clear_slowdown_are_called_so():
    rng = np.random.default_rng(1)
    dense = list(100 + rng.normal(0, 2, 9))
    fast = timing_row(dense, list(50 + rng.normal(0, 1, 9)))
    slow = timing_row(dense, list(200 + rng.normal(0, 2, 9)))
    assert "faster" in F.speed_words(fast["speedup"], F.speed_interval(fast))
    assert "slower" in F.speed_words(slow["speedup"], F.speed_interval(slow))


def test_a_ratio_without_interval_is_not_called_a_change():
    words = F.speed_words(1.15, F.speed_interval({"speedup": 1.15}))
    assert "not called a change" in words and "faster" not in words


def test_accuracy_over_few_items_is_a_count_and_close_counts_are_not_ranked():
    rows = [{"method": m, "metric": "retrieval_top1", "value": c / 64, "n_tokens": 64} for m, c in
            (("sparsegpt", 27), ("wanda", 21), ("layer_magnitude", 23))]
    words = F.ranking_words(rows, lower_better=False)
    assert "27/64" in words and "not separable" in words and "is best" not in words


def test_separated_intervals_rank_and_overlapping_ones_do_not():
    def row(m, v, lo, hi):
        return {"method": m, "metric": "kl_from_dense", "value": v, "ci_lo": lo, "ci_hi": hi}
    clear = [row("sparsegpt", 0.2, 0.18, 0.22), row("wanda", 0.4, 0.36, 0.44)]
    assert "sparsegpt 0.2 [0.18–0.22] is best" in F.ranking_words(clear, lower_better=True)
    overlap = [row("sparsegpt", 0.2, 0.15, 0.30), row("wanda", 0.25, 0.2, 0.32)]
    assert "not separable" in F.ranking_words(overlap, lower_better=True)


# ------------------------------------------------------------------------------ conditional conclusions
def test_one_threshold_cannot_be_shared_only_when_scales_differ():
    assert "cannot be carried" in F.threshold_sentence({"a": 0.1, "b": 0.01})
    same = F.threshold_sentence({"a": 0.1, "b": 0.08})
    assert "does not rule out" in same and "cannot" not in same


def kl_table(values: dict[tuple[str, float], float]) -> pd.DataFrame:
    return pd.DataFrame([{"model": "m", "method": k[0], "target_sparsity": k[1], "value": v, "nm": ""}
                         for k, v in values.items()])


def test_fifty_percent_is_where_quality_holds_best_only_when_kl_is_smallest_there():
    rising = kl_table({("wanda", 0.5): 0.3, ("wanda", 0.9): 2.0, ("sparsegpt", 0.5): 0.2, ("sparsegpt", 0.9): 1.5})
    assert "KL from dense is smallest" in F.half_sparsity_clause(rising)
    odd = kl_table({("wanda", 0.5): 0.3, ("wanda", 0.9): 0.1})
    assert "not every method" in F.half_sparsity_clause(odd)
    assert "only unstructured target" in F.half_sparsity_clause(kl_table({("wanda", 0.5): 0.3}))
    assert F.half_sparsity_clause(kl_table({("wanda", 0.7): 0.3})) == ""


def test_no_depth_trend_is_claimed_over_four_blocks():
    four = F.depth_sentence("encoder", "m", [0, 1, 2, 3], [0.1, 0.2, 0.3, 0.4])
    assert "no depth trend is claimed" in four and "grows" not in four
    twelve = F.depth_sentence("decoder", "m", list(range(12)), list(np.linspace(0.1, 0.2, 12)))
    assert "grows with depth" in twelve
    rng = np.random.default_rng(0)
    flat = F.depth_sentence("decoder", "m", list(range(12)), list(0.1 + 0.01 * rng.permutation(12)))
    assert "no monotone depth trend" in flat or "with depth" not in flat


def test_histogram_and_cdf_paragraphs_match_numpy_on_planted_weights():
    import torch
    from sparsescope.analysis.statistics import TensorScanner
    rng = np.random.default_rng(0)
    # 80% of the weights at 10**U(-4, -2), 20% at 10**U(-2, -1), 1000 exact zeros
    w = np.concatenate([10 ** rng.uniform(-4, -2, 80_000), 10 ** rng.uniform(-2, -1, 20_000), np.zeros(1000)])
    w = (w * rng.choice([-1, 1], w.size)).astype(np.float32)
    acc = TensorScanner().scan(torch.from_numpy(w))
    a = np.abs(w)
    text = F.histogram_sentence("m", acc)
    from sparsescope.analysis.statistics import log10_histogram
    edges = log10_histogram(acc)["edges"]  # 20 a decade, each snapped to a float32 key edge; numpy counts
    assert np.allclose(np.log10(edges[1:] / edges[:-1]), 1 / 20, atol=0.004)
    counts, _ = np.histogram(a[a > 0], edges)
    k = int(np.argmax(counts))
    assert F.num(np.sqrt(edges[k] * edges[k + 1])) in text and F.pct(counts[k] / a.size) in text
    lo, hi = np.quantile(a, [0.01, 0.99], method="inverted_cdf")
    got = re.search(r"between (\S+) and (\S+), (\S+) decades", text)
    assert got, text
    # quantiles are read to bin resolution (relative error below 2**-8), then printed to 3 digits / 1 decimal
    assert float(got[1]) == pytest.approx(lo, rel=0.01) and float(got[2]) == pytest.approx(hi, rel=0.01)
    assert abs(float(got[3]) - np.log10(hi / lo)) <= 0.05 + 0.004
    assert F.pct(1000 / a.size) + " are exactly 0" in text
    cdf = F.cdf_sentence("m", acc.summary())  # as analyze_model saves it
    got = re.search(r"sits at \|w\| = (\S+) and a 90% one at (\S+);", cdf)
    assert got, cdf
    assert float(got[1]) == pytest.approx(np.quantile(a, 0.5, method="inverted_cdf"), rel=0.01)
    assert float(got[2]) == pytest.approx(np.quantile(a, 0.9, method="inverted_cdf"), rel=0.01)
    assert F.pct((a < 1e-2).mean()) + " below 1e-2" in cdf and F.pct((a < 1e-3).mean()) + " of them" in cdf
    assert "none is exactly 0" in F.histogram_sentence("m", TensorScanner().scan(torch.ones(10)))


def test_block_formats_pay_off_only_when_the_data_say_so():
    slow = pd.DataFrame([{"kind": "kernel-bsr", "shape_or_model": "8x8", "sparsity": 0.9, "tokens": 16,
                          "speedup": 0.4}])
    assert "did not pay off" in F.bsr_sentence(slow)
    fast = slow.assign(speedup=3.0, speedup_lo=2.5, speedup_hi=3.5)
    assert "beat dense" in F.bsr_sentence(fast) and "did not pay off" not in F.bsr_sentence(fast)
    noisy = slow.assign(speedup=3.0)
    assert "not called a win" in F.bsr_sentence(noisy)


def test_casting_is_compared_with_sparsity_both_ways():
    base = {"fp16": 50, "int8": 27, "4-bit": 15}
    assert "casting alone is smaller" in F.casting_sentence("m", base, 100, 70)
    assert "smaller than any of the casts" in F.casting_sentence("m", base, 100, 10)


def test_models_with_one_size_verdict_share_one_sentence_and_differing_ones_do_not():
    base = {"fp16": 50, "int8": 27, "4-bit": 15}
    alike = F.casting_sentences([("a", base, 100, 58), ("b", base, 100, 55), ("c", base, 200, 114)])
    assert len(alike) == 1                                          # one finding, said once
    assert alike[0].startswith("55.0%–58.0% of the dense bytes") and "a 58.0%, b 55.0%, c 57.0%" in alike[0]
    assert "for each" in alike[0] and "4-bit would take 7.50%–15.0%" in alike[0]  # 15/100 and 15/200
    apart = F.casting_sentences([("a", base, 100, 58), ("b", base, 100, 10), ("c", base, 100, None)])
    assert len(apart) == 2 and "smaller than any of the casts" in apart[1]   # c has no 50% run: left out
    assert F.shared_values([("a", "1.000–1.161×"), ("b", "1.000–1.161×")], 2) == [("every model", "1.000–1.161×")]
    assert F.shared_values([("a", "1.0×"), ("b", "1.2×"), ("c", "1.0×")], 3) == [("a and c", "1.0×"), ("b", "1.2×")]


def test_bytes_of_a_dense_file_beyond_its_weights_are_named_only_when_they_matter():
    tensors = pd.DataFrame({"n": [750_000, 250_000], "dtype": ["float32", "float16"]})  # 3.0 MB + 0.5 MB
    said = F.beside_weights(tensors, 3_700_000, ["h.0.attn.bias", "h.1.attn.bias"], "gpt")
    assert "0.2 MB (5.41%)" in said and "2 buffers" in said and "h.0.attn.bias" in said
    assert F.beside_weights(tensors, 3_520_000, [], "gpt") == ""    # 20 kB of header: under 1%, not said
    assert "1 buffer that is not a weight, h.0.attn.bias," in F.beside_weights(tensors, 3_700_000, ["h.0.attn.bias"], "g")
    ids = pd.DataFrame({"n": [500_000, 500_000], "dtype": ["int64", "bfloat16"]})  # 4.0 MB + 1.0 MB
    assert F.beside_weights(ids, 5_010_000, [], "g") == ""           # int64 counts 8 bytes, not 4


def test_objectives_and_counted_units_follow_the_metrics_that_ran():
    text_only = F.metrics_scored([quality([("dense", 0, "", "perplexity", 9.0)]),
                                  quality([("dense", 0, "", "mlm_loss", 2.0), ("dense", 0, "", "mlm_top1", 0.5)])])
    assert [o.split()[0] for o in F.objectives_scored(text_only)] == ["perplexity", "masked-LM"]
    assert F.counted_units(text_only) == ["masked tokens"]           # no passages, no words, no Whisper
    assert not any("Whisper" in o or "sentence encoder" in o for o in F.objectives_scored(text_only))


def test_numbers_that_round_to_zero_print_without_a_sign():
    assert [F.fixed1(x) for x in (-0.04, 0.04, -0.06, 2.35)] == ["0.0", "0.0", "-0.1", "2.4"]


def quality(rows) -> pd.DataFrame:
    return pd.DataFrame([{"method": m, "target_sparsity": t, "nm": nm, "metric": metric, "value": v,
                          "n_tokens": 100} for m, t, nm, metric, v in rows])


def test_speech_model_usable_or_not_is_said_plainly():
    broken = quality([("dense", 0, "", "wer", 0.08), ("wanda", 0.5, "", "wer", 1.0), ("sparsegpt", 0.5, "", "wer", 0.4)])
    assert "no method keeps w usable at 50%" in F.usable_sentence("w", broken)
    fine = quality([("dense", 0, "", "wer", 0.08), ("sparsegpt", 0.5, "", "wer", 0.1)])
    assert "keeps w usable" in F.usable_sentence("w", fine)
    # 0.29 is above the 2x limit (0.168), but its interval over 155 words reaches below it: not called
    unsure = quality([("dense", 0, "", "wer", 0.084), ("sparsegpt", 0.5, "", "wer", 0.29)]).assign(
        ci_lo=[0.05, 0.166], ci_hi=[0.12, 0.426], count=[13, 45], total=[155, 155])
    said = F.usable_sentence("w", unsure)
    assert "cannot tell" in said and "155 words" in said and "no method keeps" not in said
    above = unsure.assign(ci_lo=[0.05, 0.2])
    assert "no method keeps w usable" in F.usable_sentence("w", above)


def test_small_model_against_the_papers_smallest_both_ways():
    from sparsescope.report.text import PUBLISHED

    class M:  # the attributes scale_sentence reads
        def __init__(self, ppl):
            self.name, self.quality = "lm", quality([("dense", 0, "", "perplexity", 20.0),
                                                     ("sparsegpt", 0.5, "", "perplexity", ppl)])
    assert "loses more than" in F.scale_sentence([M(40.0)], PUBLISHED)      # 2.0× against 1.33×
    assert "loses less than" in F.scale_sentence([M(21.0)], PUBLISHED)      # 1.05×
    wide = M(40.0)                                                           # 2.0×, but its interval ...
    wide.quality = wide.quality.assign(ci_lo=[19.0, 22.0], ci_hi=[21.0, 44.0])  # ... 1.10-2.2× holds 1.33×
    said = F.scale_sentence([wide], PUBLISHED)
    assert "about as much as" in said and "[1.10×, 2.20×]" in said


def test_calibrated_methods_lead_only_where_separable():
    class M:
        def __init__(self, q):
            self.name, self.quality = "m", q
    ahead = quality([("wanda", 0.5, "", "kl_from_dense", 0.2), ("global_magnitude", 0.5, "", "kl_from_dense", 1.0)])
    tied = quality([("wanda", 0.5, "", "kl_from_dense", 0.50), ("global_magnitude", 0.5, "", "kl_from_dense", 0.52)])
    assert F.calibrated_count([M(ahead)]) == (1, 0, 1)
    assert F.calibrated_count([M(tied)]) == (0, 1, 1)
    # the sentence reads right for every count: never "in 0 of 1 models"
    assert F.calibrated_sentence(0, 0, 0) == ""
    assert F.calibrated_sentence(1, 0, 1).endswith("clear of the others in the one model ranked.")
    assert F.calibrated_sentence(3, 0, 3).endswith("in all 3 models ranked.")
    assert F.calibrated_sentence(0, 0, 1).startswith("No calibrated method")
    assert F.calibrated_sentence(0, 1, 1) == ("A calibrated method (Wanda or SparseGPT) leads on KL tied with "
                                              "another method (intervals overlap) in 1 of 1.")
    assert F.calibrated_sentence(1, 1, 3) == ("A calibrated method (Wanda or SparseGPT) leads on KL clear of the "
                                              "others in 1 of 3 models and tied with another method "
                                              "(intervals overlap) in 1 of 3.")
    assert " 0 of " not in " ".join(F.calibrated_sentence(a, t, c) for c in range(4) for a in range(c + 1)
                                     for t in range(c - a + 1))


def test_layer_collapse_counts_the_matrices_a_global_threshold_empties():
    pm = pd.DataFrame([{"method": "global_magnitude", "nm": "", "target_sparsity": t, "name": n, "n": 100,
                        "n_zero": z, "sparsity": z / 100} for t, n, z in
                       ((0.5, "a", 98), (0.5, "b", 30), (0.9, "a", 100), (0.9, "b", 99), (0.9, "c", 80))])
    c = F.layer_collapse(pm)
    assert list(c["collapsed"]) == [0, 2] and list(c["kept"]) == [2, 0]
    assert "at least 99% zero" in F.collapse_sentence("m", c)
    assert F.collapse_overview([("m", c)]).startswith("The extreme case: 98.0% of `a`")
    even = F.layer_collapse(pm[pm["target_sparsity"] == 0.5].assign(n_zero=[51, 50], sparsity=[0.51, 0.5]))
    said = F.collapse_overview([("m", even)])                        # 51% is no 'extreme case'
    assert said.startswith("No matrix comes near collapse") and "`a` of m at 50%, is 51.0% zero" in said
    # two models: the one that empties a matrix at its higher target is the case named, wherever it is
    mild = F.layer_collapse(pm[pm["target_sparsity"] == 0.5].assign(n_zero=[60, 50], sparsity=[0.6, 0.5]))
    assert "in m;" in F.collapse_overview([("calm", mild), ("m", c)])
    lead = F.collapse_lead([("calm", mild), ("m", c)])
    assert lead.startswith("Global magnitude can all but remove whole matrices") and "in m" in lead
    assert F.collapse_lead([("calm", mild), ("m", even)]) == (
        "Global magnitude leaves every matrix partly intact here: the most-pruned matrix is 60.0% zero "
        "(calm; see Layer collapse).")


def test_the_methods_held_at_target_are_only_those_that_ran():
    from sparsescope.report.text import Report
    assert Report.held_by_construction(["global_magnitude", "nm_magnitude", "wanda"]) == (
        " N:M and Wanda hold every matrix at the target by construction.")
    assert Report.held_by_construction(["global_magnitude", "sparsegpt"]).startswith(" SparseGPT holds")
    assert Report.held_by_construction(["global_magnitude"]) == ""


def test_report_crossovers_are_recomputed_from_the_kernel_rows_with_their_intervals():
    rows = [{"kind": "kernel-csr", "shape_or_model": "8x8", "tokens": 16, "sparsity": x, "speedup": v,
             "speedup_lo": lo} for x, v, lo in ((0.5, 1.2, 0.7), (0.9, 1.5, 1.3))]
    saved = pd.DataFrame([{"kind": "kernel-csr", "shape_or_model": "8x8", "tokens": 16, "crossover_sparsity": 0.5}])
    got = F.crossovers_of(pd.DataFrame(rows), saved)                # a median of 1.2 at 50% is no win
    assert got["crossover_sparsity"].iloc[0] == 0.9                # the measured sparsity, not an interpolation
    assert got["interpolated_crossover"].iloc[0] == pytest.approx(0.5 + 0.4 * 0.3 / 0.6)
    assert F.crossover_words(got, pd.DataFrame(rows)) == [
        "16 tokens per batch: CSR measurably faster at 90% sparsity and every measured sparsity above"]
    once = pd.DataFrame([{**r, "speedup_lo": float("nan"), "repeats": 1} for r in rows])
    assert F.crossover_words(F.crossovers_of(once, saved), once) == [
        "16 tokens per batch: timed once per point, so no interval and no crossover claimed"]
    older = pd.DataFrame(rows).drop(columns="speedup_lo")           # results saved before intervals
    said = F.crossover_words(F.crossovers_of(older, saved), older)
    assert said == ["16 tokens per batch: CSR faster (medians, no interval) at 50% sparsity and every measured "
                    "sparsity above"]
    assert not F.crossovers_measured(F.crossovers_of(older, saved))


def test_numbers_read_as_people_write_them():
    assert F.num(105714.18) == "105,714" and F.num(22029571.7) == "22.0 M" and "e+" not in F.num(1.057e5)
    assert F.pct(0.99995479) == "99.995%" and F.pct(0.979) == "97.9%"


# ------------------------------------------------------------------------------------------ figures
def per_tensor(blocks: int, stacks=("encoder", "decoder")) -> pd.DataFrame:
    rows = []
    for stack in stacks:
        for b in range(blocks):
            for leaf in ("down_proj", "q_proj", "up_proj", "k_proj", "o_proj", "v_proj", "gate_proj"):
                part = "mlp" if leaf in ("down_proj", "up_proj", "gate_proj") else "self_attn"
                rows.append({"name": f"model.{stack}.layers.{b}.{part}.{leaf}.weight", "stack": stack,
                             "block": float(b), "role": leaf.removesuffix("_proj"), "n": 100,
                             "n_zero": (7 * b) % 100})
    return pd.DataFrame(rows).sample(frac=1, random_state=0)  # stored order is not depth order


def test_heatmap_blocks_in_numeric_order_roles_in_block_order_stacks_one_above_the_other():
    fig = layer_sparsity_heatmap(per_tensor(21), "t")
    heat = [ax for ax in fig.axes if ax.get_title().endswith("blocks")]
    assert [ax.get_title() for ax in heat] == ["encoder blocks", "decoder blocks"]
    assert heat[0].get_position().y0 > heat[1].get_position().y0  # encoder above decoder
    for ax in heat:
        blocks = [int(t.get_text()) for t in ax.get_yticklabels()]
        assert blocks == sorted(blocks) and blocks[0] == 0
        assert [t.get_text() for t in ax.get_xticklabels()] == ["q", "k", "v", "o", "gate", "up/fc1", "down/fc2"]
    for text in fig.findobj(matplotlib.text.Text):
        if text.get_text() and text.get_visible():
            assert text.get_fontsize() >= 6.5, text.get_text()


def test_heatmap_colours_diverge_from_the_target():
    table = per_tensor(3, stacks=("decoder",)).assign(n_zero=lambda d: [50, 100, 0] * 7)  # at, above, below
    fig = layer_sparsity_heatmap(table, "t", target=0.5)
    mesh = next(c for ax in fig.axes if ax.get_title() == "decoder blocks" for c in ax.collections)
    rgba = mesh.to_rgba(np.array([50.0, 100.0, 0.0]))
    assert np.all(rgba[0, :3] > 0.9)                      # the target is (nearly) white
    assert rgba[1, 0] > rgba[1, 2] and rgba[2, 2] > rgba[2, 0]   # above it red, below it blue
    assert "white = the target, 50%" in fig._suptitle.get_text()


def runtime_rows() -> pd.DataFrame:
    rows = []
    for b in (1, 8):
        rows.append({"kind": "dense-kernels", "shape_or_model": "m", "sparsity": 0.5, "tokens": 128 * b, "batch": b,
                     "seqlen": 128, "dense_ms": 10.0, "sparse_ms": 10.1, "speedup": 0.99, "speedup_lo": 0.9,
                     "speedup_hi": 1.1, "device": "cpu"})
        rows.append({**rows[-1], "kind": "sparse-kernels-e2e", "sparsity": 0.9, "speedup": 1.3, "speedup_lo": 1.2,
                     "speedup_hi": 1.4})
    for kind in ("kernel-csr", "kernel-bsr"):
        for s in (0.5, 0.9):
            for n in (1, 16):
                rows.append({"kind": kind, "shape_or_model": "64x32", "sparsity": s, "tokens": n,
                             "dense_ms": 1.0, "sparse_ms": 2 - s, "speedup": 1 / (2 - s), "device": "cpu"})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("keep", [
    ("kernel-csr",), ("kernel-csr", "kernel-bsr"), ("dense-kernels",), ("sparse-kernels-e2e",),
    ("dense-kernels", "kernel-csr"), ("kernel-bsr",), ()])
def test_runtime_figure_draws_any_subset_and_says_what_is_missing(keep):
    full = runtime_rows()
    subset = full[full["kind"].isin(keep)]
    if "dense-kernels" not in keep and "sparse-kernels-e2e" not in keep:
        subset = subset.drop(columns=["batch", "seqlen"])  # kernel rows alone have no batch (the old KeyError)
    fig = runtime_figure(subset.reset_index(drop=True), "t")
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert visible
    note = " ".join(t.get_text() for t in fig.texts)
    if "dense-kernels" not in keep:
        assert "Not measured" in note and "dense kernels" in note
    if keep:
        lows = {ax.get_ylim() for ax in visible}
        assert len(lows) == 1  # one y-range for every panel


# ------------------------------------------------------------------------------------- rendered pages
def need(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")


def page_words(pdf: Path) -> list[tuple[float, float, list[tuple[float, float, str]]]]:
    """(width, height, [(xMin, xMax, word)]) per page, from pdftotext's word boxes."""
    out = subprocess.run(["pdftotext", "-bbox", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    pages = []
    for page in re.finditer(r'<page width="([\d.]+)" height="([\d.]+)">(.*?)</page>', out, re.S):
        words = [(float(a), float(b), w) for a, b, w in
                 re.findall(r'<word xMin="([\d.]+)" yMin="[\d.]+" xMax="([\d.]+)" yMax="[\d.]+">([^<]*)</word>',
                            page.group(3))]
        pages.append((float(page.group(1)), float(page.group(2)), words))
    return pages


def images_per_page(pdf: Path) -> dict[int, int]:
    out = subprocess.run(["pdfimages", "-list", str(pdf)], capture_output=True, text=True, check=True).stdout
    counts: dict[int, int] = {}
    for line in out.splitlines()[2:]:
        if line.split():
            page = int(line.split()[0])
            counts[page] = counts.get(page, 0) + 1
    return counts


def layout_problems(pdf: Path, min_words: int = 40) -> list[str]:
    """Words past the right margin (a clipped table), empty pages, near-empty pages before the last."""
    problems = []
    pages, images = page_words(pdf), images_per_page(pdf)
    for i, (width, _, words) in enumerate(pages, 1):
        edge = width - MARGIN_PT + 1.0
        past = [w for _, x1, w in words if x1 > edge]
        if past:
            problems.append(f"page {i}: text past the right margin: {past[:5]}")
        body = [w for w in words if not re.fullmatch(r"\d+|/", w[2])]  # the footer's "3 / 17"
        if not body and not images.get(i):
            problems.append(f"page {i} is empty")
        elif i < len(pages) and len(body) < min_words and not images.get(i):
            problems.append(f"page {i} is nearly empty ({len(body)} words)")
    return problems


def last_lines(pdf: Path) -> list[str]:
    """Each page's lowest line of text above the footer (words grouped by their baseline)."""
    out = subprocess.run(["pdftotext", "-bbox", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    last = []
    for page in re.finditer(r"<page [^>]*>(.*?)</page>", out, re.S):
        lines: dict[float, list[tuple[float, str]]] = {}
        for x, y, w in re.findall(r'<word xMin="([\d.]+)" yMin="[\d.]+" xMax="[\d.]+" yMax="([\d.]+)">([^<]*)</word>',
                                  page.group(1)):
            key = next((k for k in lines if abs(k - float(y)) < 2.0), float(y))
            lines.setdefault(key, []).append((float(x), w))
        body = [" ".join(w for _, w in sorted(ws)) for _, ws in sorted(lines.items())]
        body = [t for t in body if not re.fullmatch(r"\d+ / \d+", t)]  # the footer's "3 / 17"
        last.append(body[-1] if body else "")
    return last


def stranded_headings(html: str, pdf: Path) -> list[str]:
    """Headings (h2–h4) that end a page: the page's last line is the heading or the last line it wrapped to."""
    heads = [" ".join(re.sub(r"<[^>]+>", " ", h).split()) for h in re.findall(r"<h[2-4][^>]*>(.*?)</h[2-4]>", html, re.S)]
    heads = [h.replace("¶", "").strip() for h in heads]
    return [f"page {i}: '{line}' ends the page" for i, line in enumerate(last_lines(pdf), 1)
            if line and any(h == line or (h.endswith(" " + line) and len(line.split()) > 1) for h in heads)]


def test_the_page_check_catches_a_heading_stranded_at_the_bottom_of_a_page(tmp_path):
    need("pdftotext")
    from sparsescope.report.build import write_pdf
    body = "<p>" + "word " * 60 + "</p>"
    # a forced break beats the stylesheet's break-after: avoid, so this heading must end page 1
    html = (f"<html><body><h3>Kept with its text</h3>{body}<h3>Left alone at the bottom</h3>"
            f"<p style='break-before: page'>{'word ' * 60}</p></body></html>")
    path = tmp_path / "stranded.html"
    path.write_text(html)
    assert stranded_headings(html, write_pdf(path, tmp_path / "stranded.pdf")) == [
        "page 1: 'Left alone at the bottom' ends the page"]


def test_the_page_check_catches_a_clipped_table_and_an_empty_page(tmp_path):
    need("pdftotext")
    need("pdfimages")
    from sparsescope.report.build import write_pdf
    wide = "<table class='ss-table'><tr>" + "".join(f"<td>{'x' * 40}{i}</td>" for i in range(8)) + "</tr></table>"
    html = tmp_path / "bad.html"
    html.write_text(f"<html><body><p>{'word ' * 60}</p>{wide}<div style='break-before: page'></div>"
                    f"<p style='break-before: page'>{'word ' * 60}</p></body></html>")
    problems = layout_problems(write_pdf(html, tmp_path / "bad.pdf"))
    assert any("past the right margin" in p for p in problems)
    assert any("empty" in p for p in problems)


@pytest.fixture(scope="module")
def report_pdf(tiny_models, tmp_path_factory):
    """The real report (papermill, nbconvert, WeasyPrint) on a tiny Llama's real distribution and pruning
    runs, with synthetic benchmark tables that carry the newer columns (intervals, counts)."""
    need("pdftotext")
    from sparsescope.analysis.distribution import analyze_model
    from sparsescope.artifacts import results_path
    from sparsescope.evaluation.size import size_results
    from sparsescope.pruning.runs import PruneSpec, prune_runs
    from sparsescope.run import build_report
    root = tmp_path_factory.mktemp("report")
    model = str(tiny_models["llama"])
    results = root / "results"
    analyze_model(model, results_path(results, model, "distribution"), progress=False)
    pruning = results_path(results, model, "pruning")
    specs = [PruneSpec("global_magnitude", 0.5), PruneSpec("global_magnitude", 0.9), PruneSpec("layer_magnitude", 0.5),
             PruneSpec("nm_magnitude", nm="2:4")]
    table = prune_runs(model, pruning, specs, progress=False)
    bench = results_path(results, model, "benchmarks")
    size_results(pruning, bench)
    rows = [("dense", 0.0, "", 40.0)] + [(r.method, r.target_sparsity, r.nm if isinstance(r.nm, str) else "",
                                          40.0 * (1 + 4 * r.target_sparsity)) for r in table.itertuples()]
    q = []
    for method, target, nm, ppl in rows:
        kl = 0.0 if method == "dense" else ppl / 40 - 0.9
        q += [{"method": method, "target_sparsity": target, "nm": nm, "metric": "perplexity", "value": ppl,
               "ci_lo": ppl * 0.95, "ci_hi": ppl * 1.05, "n_tokens": 512},
              {"method": method, "target_sparsity": target, "nm": nm, "metric": "kl_from_dense", "value": kl,
               "ci_lo": kl * 0.9, "ci_hi": kl * 1.1, "n_tokens": 512}]
    pd.DataFrame(q).to_csv(bench / "quality.csv", index=False)
    runtime_rows().to_csv(bench / "runtime.csv", index=False)
    pd.DataFrame([{"kind": "kernel-csr", "shape_or_model": "64x32", "tokens": 16, "crossover_sparsity": 0.8}]).to_csv(
        bench / "crossovers.csv", index=False)
    (bench / "manifest.json").write_text(json.dumps({"parameters": {"corpus": "sotu", "budget": {
        "n_tokens": 512, "window": 128, "n_passages": 64, "n_clips": 8}}}))
    html = build_report([model], results, root / "report")
    return html, html.with_suffix(".pdf")


def test_rendered_report_has_no_clipped_table_and_no_empty_page(report_pdf):
    html, pdf = report_pdf
    assert layout_problems(pdf) == []
    assert stranded_headings(html.read_text(), pdf) == []


def test_rendered_report_numbers_its_figures_and_gives_every_image_alt_text(report_pdf):
    html_path, _ = report_pdf
    html = html_path.read_text()
    images = re.findall(r"<img\b[^>]*>", html)
    assert images and all(re.search(r'alt="[^"]{20,}"', img) for img in images)
    numbers = [int(n) for n in re.findall(r"<b>Figure (\d+)\.</b>", html)]
    assert numbers == list(range(1, len(images) + 1))
    text = re.sub(r"<[^>]+>", " ", re.sub(r"<(style|script)\b.*?</\1>", " ", html, flags=re.S))
    # template leftovers such as "model(s)" (the mask entropy H(s) is notation, not a leftover)
    assert not re.search(r"[a-z]\(s\)", text) and not re.search(r"\bnan\b", text, re.I) and "e+0" not in text
    assert 'class="ss-toc"' in html


SEED_SECTIONS = ("Sparsity Structure", "Histograms", "CDFs", "CDFs by Layer", "Sparsification", "Benchmarks",
                 "Size", "Runtime", "Challenges of Sparsification")


def test_rendered_report_keeps_the_seeds_sections_with_a_paragraph_per_model_under_each_view(report_pdf, tiny_models):
    html = report_pdf[0].read_text()
    found = [(m.start(), re.sub(r"<[^>]+>|¶", "", m[1]).strip())
             for m in re.finditer(r"<h[1-4][^>]*>(.*?)</h[1-4]>", html, re.S)]
    seed = [h for _, h in found if h in SEED_SECTIONS]
    assert seed == list(SEED_SECTIONS), found
    at = {h: i for i, (_, h) in enumerate(found)}
    model = tiny_models["llama"].name
    for view in ("Histograms", "CDFs", "CDFs by Layer"):
        i = at[view]
        body = html[found[i][0]:found[i + 1][0]]
        paragraphs = [re.sub(r"<[^>]+>", "", p).strip() for p in re.findall(r"<(?:p|li)>(.*?)</(?:p|li)>", body, re.S)]
        assert any(p.startswith(f"{model}") and len(p) > 60 for p in paragraphs), (view, paragraphs)


# --------------------------------------------------------------- quality intervals at the source (issue 11)
def fake_evaluator(objective, batches, dense):
    from sparsescope.evaluation.quality import QualityEvaluator
    ev = object.__new__(QualityEvaluator)  # score() reads only these
    ev.objective, ev.batches, ev.dense, ev.tokenizer = objective, batches, dense, None
    return ev


def test_quality_rows_carry_bootstrap_intervals_and_wer_counts_and_transcripts():
    import torch
    from sparsescope.evaluation.quality import split_transcripts
    torch.manual_seed(0)
    dense = [{"logp": torch.log_softmax(torch.randn(32, 11), -1), "labels": torch.randint(0, 11, (32,))}
             for _ in range(8)]
    pruned = [{**d, "logp": torch.log_softmax(d["logp"] + torch.randn(32, 11), -1)} for d in dense]
    rows = {r["metric"]: r for r in fake_evaluator("causal-lm", [], dense).score(pruned)}
    for metric in ("perplexity", "kl_from_dense"):
        r = rows[metric]
        assert r["ci_lo"] < r["value"] < r["ci_hi"], r
    assert F.interval(rows["perplexity"]) and "[" in F.value_text(rows["perplexity"])
    refs = ["the cat sat on the mat", "we will not stop"]
    speech = [{**d, "hypothesis": h} for d, h in zip(dense, ["the cat sat on a mat", "we will not stop"])]
    out = fake_evaluator("speech", [{"text": t} for t in refs], dense[:2]).score(speech)
    wer = next(r for r in out if r["metric"] == "wer")
    assert (wer["count"], wer["total"]) == (1, 10) and "(1/10)" in F.value_text(wer)
    row = {"method": "wanda", "target_sparsity": 0.5, "nm": "", **wer}
    table = split_transcripts([row])
    assert list(table["hypothesis"]) == ["the cat sat on a mat", "we will not stop"] and "transcripts" not in row
    retrieval = [{"logp": torch.log_softmax(torch.randn(64, 64), -1), "labels": torch.arange(64),
                  "embeddings": torch.nn.functional.normalize(torch.randn(128, 8), dim=-1)}]
    rows = {r["metric"]: r for r in fake_evaluator("sentence-embedding", [], retrieval).score(retrieval)}
    assert rows["retrieval_top1"]["total"] == 64 and F.value_text(rows["retrieval_top1"]).endswith("/64")
    assert rows["cosine_to_dense"]["ci_lo"] <= 1.0 <= rows["cosine_to_dense"]["ci_hi"] + 1e-9


# ------------------------------------------------------------------------------- small print (issue 11)
def test_a_range_whose_ends_print_alike_is_one_number_and_one_token_is_singular():
    assert F.span(2.1, 2.1) == "2.1" and F.span(0.5, 0.8, "{:.0%}".format) == "50%–80%"
    rows = runtime_rows()
    assert "1 token per batch" in F.bsr_sentence(rows[rows["kind"] == "kernel-bsr"])


def test_an_interval_in_a_table_cell_never_breaks_at_its_dash():
    from sparsescope.report.html import table_html
    cell = table_html(pd.DataFrame({"KL": ["0.0793 [0.0787–0.0799]"], "run": ["wanda–sparsegpt"]}))
    assert "0.0787\u2060–\u20600.0799" in cell          # joined: no line break inside the interval
    assert "wanda–sparsegpt" in cell                       # a dash between words is left alone


def test_whole_model_latency_names_its_tokens_per_batch():
    fig = runtime_figure(runtime_rows(), "t")
    assert any("128 tokens" in ax.get_xlabel() for ax in fig.axes if ax.get_title() == "whole model")


def test_rendered_summary_names_the_tokens_behind_its_latency_and_no_range_repeats_itself(report_pdf):
    html = report_pdf[0].read_text()
    assert "speed, batch 1 × 128 tokens" in html
    text = re.sub(r"<[^>]+>", " ", html)
    assert not re.search(r"(?<![\d.])(\d[\d.,]*%?)–\1(?![\d.])", text)


def test_quality_tables_lead_with_the_continuous_metrics():
    from sparsescope.report.text import Report
    q = pd.DataFrame([{"method": "dense", "target_sparsity": 0.0, "nm": "", "metric": m, "value": v,
                       "n_tokens": 64} for m, v in (("retrieval_top1", 0.5), ("cosine_to_dense", 1.0),
                                                     ("kl_from_dense", 0.0))])
    assert list(Report.quality_table(q).columns) == ["cosine to dense", "KL from dense", "retrieval top-1"]


def test_a_de_quantised_model_carries_its_origin():
    from sparsescope.report.text import caveat

    class M:
        name = "smollm2-135m"
        dist = type("D", (), {"summary": {"model_info": {"note": "de-quantised from a Q4_1 GGUF"}}})()
    assert "Q4_1" in caveat(M()) and "4-bit grid" in caveat(M())


def test_default_runs_left_out_are_named_in_one_sentence():
    from types import SimpleNamespace
    skipped = pd.DataFrame([{"run": "ffn_activation-0.5", "method": "ffn_activation", "target_sparsity": 0.5,
                             "reason": "ffn_activation-0.5 would remove 70 FFN neurons of 64 in every module; keeping "
                                       "one, at most 44.1% of the prunable parameters can go this way: choose a share "
                                       "of at most 0.441"}])
    models = [SimpleNamespace(name="tiny-opt", skipped=skipped), SimpleNamespace(name="gpt2", skipped=pd.DataFrame())]
    said = F.skipped_sentence(models)
    assert said.startswith("The default grid left out what cannot apply to a model: ffn_activation 50% of tiny-opt (")
    assert said.endswith("at most 44.1% of the prunable parameters can go this way: choose a share of at most "
                         "0.441).") and ". " not in said
    assert F.skipped_sentence(models[1:]) == ""


def test_the_contents_lists_the_headings_the_report_shows_in_their_order(report_pdf):
    from sparsescope.report.text import SECTIONS
    html = report_pdf[0].read_text()
    toc = re.search(r'<nav class="ss-toc">(.*?)</nav>', html, re.S)[1]
    listed = [(href, re.sub(r"<[^>]+>", "", title)) for href, title in re.findall(r'<a href="#([^"]+)">(.*?)</a>', toc)]
    assert [title for _, title in listed] == [title for _, title in SECTIONS[1:]]
    shown = [(m[2], re.sub(r"<[^>]+>|¶", "", m[3]).strip())
             for m in re.finditer(r'<h([23])[^>]*\bid="([^"]+)"[^>]*>(.*?)</h\1>', html, re.S)]
    ids = [i for i, _ in shown]
    assert all(href in ids for href, _ in listed), (listed, shown)
    assert [ids.index(href) for href, _ in listed] == sorted(ids.index(href) for href, _ in listed)
    assert {title for _, title in listed} <= {title for _, title in shown}


def test_a_model_without_quality_results_is_not_measured_in_the_summary(report_pdf, tmp_path):
    from sparsescope.report.text import Report
    results = tmp_path / "results"
    shutil.copytree(report_pdf[0].parent.parent / "results", results)
    (model,) = [p.name for p in results.iterdir()]
    (results / model / "benchmarks" / "quality.csv").unlink()
    table = Report(results, [model]).summary_table()
    assert len(table) and set(table["quality vs dense"]) == {"not measured"} and set(table["KL (nats)"]) == {
        "not measured"}


def test_a_speed_claim_never_rests_on_the_best_of_noisy_timings():
    # the report once said "BSR reached at best 3.03× dense" from a row whose interval was 0.10–6.72×
    rows = pd.DataFrame([
        {"kind": "kernel-bsr", "shape_or_model": "384x384", "sparsity": 0.5, "tokens": 128, "speedup": 3.03,
         "speedup_lo": 0.10, "speedup_hi": 6.72},
        {"kind": "kernel-bsr", "shape_or_model": "384x1536", "sparsity": 0.9, "tokens": 1, "speedup": 0.81,
         "speedup_lo": 0.78, "speedup_hi": 0.84},
        {"kind": "kernel-bsr", "shape_or_model": "384x1536", "sparsity": 0.5, "tokens": 1, "speedup": 0.62,
         "speedup_lo": 0.60, "speedup_hi": 0.64}])
    said = F.bsr_sentence(rows)
    assert "3.03" not in said and "did not pay off" in said and "0.81×" in said  # the surest case decides
    assert "1 of 3 timings" in said and "disturbed" in said
    only_noise = F.bsr_sentence(rows.iloc[:1])
    assert "no BSR speed is claimed" in only_noise and "3.03" not in only_noise


def test_a_perplexity_above_the_vocabulary_is_called_collapse_and_not_ranked():
    # SmolLM2 (|V| = 49,152) once read "sparsegpt 331 is best ...; behind: ... 105,715" as numbers to compare
    from types import SimpleNamespace

    from sparsescope.report.html import Numbering
    from sparsescope.report.text import Report
    q = quality([("dense", 0, "", "perplexity", 26.1), ("sparsegpt", 0.5, "", "perplexity", 331.0),
                 ("layer_magnitude", 0.5, "", "perplexity", 421.0), ("global_magnitude", 0.5, "", "perplexity", 105715.0)])
    m = SimpleNamespace(name="lm", family="decoder-only", quality=q, transcripts=pd.DataFrame(), vocab_size=49152,
                        dist=SimpleNamespace(summary={"model_info": {}}))
    report = object.__new__(Report)
    report.n = Numbering()
    said = report.model_quality(m)[0][1]
    line = next(x for x in said.splitlines() if x.startswith("- 50%, perplexity"))
    assert "global_magnitude 105,715 is collapsed" in line and "worse than a uniform guess" in line
    assert "behind: layer_magnitude" in line and "105,715" not in line.split(";")[0]
    assert F.collapsed({"metric": "perplexity", "value": 49153.0}, 49152)
    assert not F.collapsed({"metric": "perplexity", "value": 49151.0}, 49152)
    assert not F.collapsed({"metric": "perplexity", "value": 1e6}, None)  # unknown vocabulary: no claim


def test_casts_are_compared_in_bytes_only_while_their_quality_is_unmeasured():
    base = {"fp16": 50, "int8": 27, "4-bit": 15}
    said = F.casting_sentence("m", base, 100, 70)
    assert "casting alone is smaller" in said and "quality is not measured" in said
    assert "buy less" not in said and "lower precision" not in said  # no verdict on quality from bytes


def test_layer_collapse_is_weighed_against_layer_wise_pruning_by_the_data():
    # SmolLM2: global magnitude empties a v_proj (97.9% zero) yet layer-wise magnitude scores worse, 421 vs 331
    from types import SimpleNamespace
    worse = SimpleNamespace(name="lm", quality=quality([("dense", 0, "", "perplexity", 26.1),
                                                        ("global_magnitude", 0.5, "", "perplexity", 331.0),
                                                        ("layer_magnitude", 0.5, "", "perplexity", 421.0)]))
    better = SimpleNamespace(name="enc", quality=quality([("dense", 0, "", "mlm_loss", 2.0),
                                                          ("global_magnitude", 0.5, "", "mlm_loss", 4.0),
                                                          ("layer_magnitude", 0.5, "", "mlm_loss", 3.0)]))
    tied = SimpleNamespace(name="t", quality=quality([("global_magnitude", 0.5, "", "perplexity", 30.0),
                                                      ("layer_magnitude", 0.5, "", "perplexity", 30.5)]))
    assert F.global_against_layerwise([worse, better, tied]) == [
        ("lm", "perplexity", "331", "421", "worse"), ("enc", "MLM loss", "4", "3", "better"),
        ("t", "perplexity", "30", "30.5", "tied")]


def test_table_one_has_a_dense_row_and_says_a_models_dense_kernel_speed_once(report_pdf):
    from sparsescope.report.text import Report
    results = report_pdf[0].parent.parent / "results"
    (model,) = [p.name for p in results.iterdir()]
    table = Report(results, [model]).summary_table()
    assert list(table.index.get_level_values("run"))[0] == "dense"
    assert table.iloc[0]["bytes vs dense"] == "100%" and "[" in table.iloc[0]["quality vs dense"]
    speed = table[next(c for c in table.columns if c.startswith("speed"))]
    sparse = [s for run, s in zip(table.index.get_level_values("run"), speed) if run != "dense"]
    assert len(sparse) > 1 and sum(s != "as above †" for s in sparse) == 1 and "no change †" in sparse[0]


def test_a_wer_the_teacher_forced_loss_hides_is_a_finding():
    # Whisper: wanda 50% WER 1.06 against sparsegpt 0.258, token losses not separable
    q = pd.DataFrame([
        {"method": m, "target_sparsity": 0.5, "nm": "", "metric": met, "value": v, "ci_lo": lo, "ci_hi": hi}
        for m, met, v, lo, hi in (("wanda", "token_loss", 1.20, 1.0, 1.4), ("sparsegpt", "token_loss", 1.15, 0.95, 1.35),
                                  ("wanda", "wer", 1.06, 0.95, 1.18), ("sparsegpt", "wer", 0.258, 0.2, 0.31))])
    better, worse = F.hidden_by_loss(q)
    assert (better["method"], worse["method"]) == ("sparsegpt", "wanda")
    apart = q.assign(ci_lo=[1.15, 0.9, 0.95, 0.2], ci_hi=[1.25, 1.0, 1.18, 0.31], value=[1.2, 0.95, 1.06, 0.258])
    assert F.hidden_by_loss(apart) is None  # the loss already tells them apart


def test_structured_speed_is_read_from_its_readable_timings_with_each_runs_quality():
    from types import SimpleNamespace

    from sparsescope.report.sections.base import Section
    timings = pd.DataFrame([  # ffn_activation-0.5 at batch 1 and 8; one timing disturbed (3.81 in 0.28–14.8)
        {"kind": "structured-prefill", "run": "ffn_activation-0.5", "batch": 1, "speedup": 3.81, "speedup_lo": 0.28,
         "speedup_hi": 14.8},
        {"kind": "structured-prefill", "run": "ffn_activation-0.5", "batch": 8, "speedup": 1.45, "speedup_lo": 1.30,
         "speedup_hi": 1.60}])
    pruning = pd.DataFrame([{"method": "ffn_activation", "target_sparsity": 0.5, "kind": "structured",
                             "checkpoint": "/r/lm/pruning/ffn_activation-0.5/dense"}])
    m = SimpleNamespace(name="lm", runtime=timings, pruning=pruning,
                        quality=quality([("dense", 0, "", "perplexity", 26.1),
                                         ("ffn_activation", 0.5, "", "perplexity", 131.0)]))
    section = object.__new__(Section)
    section.models = [m]
    found = section.structured_speed()
    assert found["span"] == "1.45" and (found["faster"], found["readable"], found["timed"]) == (1, 1, 2)
    assert found["costs"] == ["lm ffn_activation 50%: perplexity 131 (5.02× dense)"] and found["batches"] == ["1", "8"]


def test_crossovers_are_one_table_of_shapes_by_tokens_per_batch():
    from sparsescope.report.sections.benchmarks import Benchmarks
    crossovers = pd.DataFrame([
        {"kind": "kernel-csr", "shape_or_model": "1536x384", "tokens": 16, "crossover_sparsity": 0.9,
         "measured_sparsities": "0.5 0.9 0.98", "rule": "interval"},
        {"kind": "kernel-csr", "shape_or_model": "384x384", "tokens": 16, "crossover_sparsity": None,
         "measured_sparsities": "0.5 0.9 0.98", "rule": "interval"},
        {"kind": "kernel-csr", "shape_or_model": "384x384", "tokens": 1, "crossover_sparsity": None,
         "measured_sparsities": "0.5 0.9", "rule": "one repeat"}])
    table = Benchmarks.crossover_table(crossovers)
    assert list(table.columns) == ["1 token per batch", "16 tokens per batch"]
    assert list(table.index) == [("CSR", "384x384"), ("CSR", "1536x384")]  # smaller matrix first
    assert table.loc[("CSR", "1536x384"), "16 tokens per batch"] == "90%"
    assert table.loc[("CSR", "384x384"), "16 tokens per batch"] == "never (to 98%)"
    assert table.loc[("CSR", "384x384"), "1 token per batch"] == "timed once"


def test_a_disturbed_timing_supports_no_claim_either_way():
    # SmolLM2 under load: dense kernels 0.41x [0.24-1.35], a structured run 3.81x [0.28-14.8]
    wide = {"speedup": 0.41, "speedup_lo": 0.24, "speedup_hi": 1.35}
    assert F.disturbed(F.speed_interval(wide)) and not F.disturbed((0.9, 1.1))
    assert F.speed_words(0.41, F.speed_interval(wide)).startswith("no reading")
    assert F.speed_cell(0.41, F.speed_interval(wide)).endswith("disturbed")
    rows = pd.DataFrame([wide, {"speedup": 1.0, "speedup_lo": 0.95, "speedup_hi": 1.05}])
    assert F.all_hold_one(rows) is None  # not "no measurable change"
    assert F.all_hold_one(rows.iloc[1:]) is True


def test_the_report_closes_with_a_conclusion_from_its_own_numbers(report_pdf):
    html = report_pdf[0].read_text()
    headings = [re.sub(r"<[^>]+>|¶", "", h).strip() for h in re.findall(r"<h2[^>]*>(.*?)</h2>", html, re.S)]
    assert headings[-1] == "Conclusion"
    ending = re.sub(r"<[^>]+>", " ", html[html.rfind('id="Conclusion"'):])
    assert "To get smaller" in ending and "% of the dense bytes" in ending


def test_the_wer_column_marks_models_that_transcribe_nothing_as_not_applicable():
    from types import SimpleNamespace

    from sparsescope.report.text import Report
    text = SimpleNamespace(quality=quality([("dense", 0, "", "perplexity", 20.0)]), vocab_size=None)
    speech = SimpleNamespace(quality=quality([("dense", 0, "", "wer", 0.1)]), vocab_size=None)
    report = object.__new__(Report)
    assert report.wer_cell(text, text.quality) == "—"
    assert report.wer_cell(speech, speech.quality).startswith("0.1")
    assert report.wer_cell(speech, speech.quality.iloc[0:0]) == "not measured"
