"""Quality metrics against hand computations, and the quality benchmark's bad inputs."""
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sparsescope import SparsescopeError
from sparsescope.pruning.runs import PruneSpec, prune_runs
from sparsescope.evaluation.quality import (Budget, QualityEvaluator, evaluate_checkpoints, kl_divergence, random_spans_noise_mask,
                                 span_corrupt, word_error_rate)
from sparsescope.sources.registry import load_model


def test_perplexity_is_the_hand_computed_cross_entropy(tiny_models):
    model = load_model(str(tiny_models["gpt2"]))
    evaluator = QualityEvaluator(model, tiny_models["gpt2"], Budget(n_tokens=96, window=32))
    rows = {r["metric"]: r for r in evaluator.evaluate(model)}
    losses = []
    for batch in evaluator.batches:
        ids = batch["input_ids"]
        with torch.no_grad():
            logits = model(ids).logits[0]
        losses.append(F.cross_entropy(logits[:-1], ids[0, 1:], reduction="none"))
    nll = torch.cat(losses).mean()
    assert rows["perplexity"]["value"] == pytest.approx(float(torch.exp(nll)), rel=1e-4)
    assert rows["perplexity"]["n_tokens"] == 3 * 31
    assert rows["kl_from_dense"]["value"] == pytest.approx(0.0, abs=1e-6)  # a model against itself


def test_kl_direction_and_zero_mass_by_hand():
    """KL(dense || pruned) = sum_c p_c ln(p_c / q_c), on numbers worked out by hand."""
    log = lambda rows: torch.tensor(rows, dtype=torch.float32).log()  # ln 0 = -inf
    p, q = log([[0.7, 0.2, 0.1]]), log([[0.1, 0.3, 0.6]])
    # 0.7 ln 7 + 0.2 ln(2/3) + 0.1 ln(1/6) = 1.3621371 - 0.0810930 - 0.1791759
    assert kl_divergence(p, q) == pytest.approx(1.1018681, rel=1e-6)
    # the other direction: 0.1 ln(1/7) + 0.3 ln 1.5 + 0.6 ln 6 = -0.1945910 + 0.1216395 + 1.0750557
    assert kl_divergence(q, p) == pytest.approx(1.0021042, rel=1e-6)
    # a class the dense model rules out adds nothing: 0.5 ln(0.5/0.25) + 0.5 ln(0.5/0.5) + 0 = 0.5 ln 2
    dense, pruned = log([[0.5, 0.5, 0.0]]), log([[0.25, 0.5, 0.25]])
    assert kl_divergence(dense, pruned) == pytest.approx(0.34657359, rel=1e-6)
    assert kl_divergence(pruned, dense) == math.inf        # mass where the other has none: infinite
    assert kl_divergence(dense, dense) == 0.0
    # the mean over positions
    both_p, both_q = torch.cat([p, dense]), torch.cat([q, pruned])
    assert kl_divergence(both_p, both_q) == pytest.approx((1.1018681 + 0.34657359) / 2, rel=1e-6)


def test_span_corruption_pairs_and_density():
    rng = np.random.default_rng(0)
    ids = list(range(1000, 1200))
    sentinels = list(range(100))
    inputs, targets = span_corrupt(ids, sentinels, eos=5000, rng=rng)
    in_sentinels = [t for t in inputs if t < 100]
    out_sentinels = [t for t in targets if t < 100]
    assert in_sentinels == out_sentinels == list(range(len(in_sentinels)))
    # putting the hidden spans back gives the original text
    spans, current = {}, None
    for t in targets[:-1]:
        if t < 100:
            current = t
            spans[current] = []
        else:
            spans[current].append(t)
    restored = [x for t in inputs[:-1] for x in (spans[t] if t < 100 else [t])]
    assert restored == ids
    assert sum(len(s) for s in spans.values()) == round(0.15 * len(ids))
    mask = random_spans_noise_mask(10_000, 0.15, 3.0, np.random.default_rng(1))
    runs = np.diff(np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(int), [0]]))))[::2]
    assert mask.mean() == pytest.approx(0.15, abs=1e-4) and runs.mean() == pytest.approx(3.0, rel=0.05)


def test_masked_lm_masks_fifteen_percent(tiny_models):
    model = load_model(str(tiny_models["bert"]))
    evaluator = QualityEvaluator(model, tiny_models["bert"], Budget(n_tokens=4096, window=256))
    masked = sum(int((b["labels"] != -100).sum()) for b in evaluator.batches)
    total = sum(b["input_ids"].numel() - 2 for b in evaluator.batches)
    assert masked / total == pytest.approx(0.15, abs=0.02)
    names = {r["metric"] for r in evaluator.evaluate(model)}
    assert names == {"mlm_loss", "mlm_top1", "kl_from_dense"}


def test_word_error_rate_on_known_strings():
    assert word_error_rate(["the cat sat on the mat"], ["the cat sat on the mat"]) == 0.0
    assert word_error_rate(["the cat sat on the mat"], ["The cat sat on a mat."]) == pytest.approx(1 / 6)
    assert word_error_rate(["a b c d"], ["a c d e f"]) == pytest.approx(3 / 4)  # 1 deletion, 2 insertions
    # by hand: "the president met 2 senators today" vs "... met to senators yesterday": 2 substitutions / 6
    assert word_error_rate(["The President met 2 senators today."],
                           ["the president met to senators yesterday"]) == pytest.approx(2 / 6)
    # pooled over pairs: (2 + 1) errors over (6 + 4) reference words
    assert word_error_rate(["The President met 2 senators today.", "we will not stop"],
                           ["the president met to senators yesterday", "we will stop"]) == pytest.approx(3 / 10)
    with pytest.raises(SparsescopeError, match="2 references but 1 hypotheses"):
        word_error_rate(["a", "b"], ["a"])


@pytest.mark.parametrize("reference,hypothesis", [
    ("In 2021, we spent $20 on 3 new schools!", "in twenty twenty-one we spent twenty dollars on three new schools"),
    ("We won't stop.", "we will not stop"),
    ("It's 10 percent, Mr. Speaker.", "it is ten percent mister speaker"),
    ("THE UNION IS STRONG", "The union is strong."),
])
def test_word_error_rate_ignores_what_whisper_normalises(reference, hypothesis):
    """Whisper's English normaliser writes case, punctuation, contractions and numbers one way."""
    assert word_error_rate([reference], [hypothesis]) == 0.0


def test_whisper_scores_the_transcript_not_the_forced_prompt(tiny_models):
    model = load_model(str(tiny_models["whisper"]))
    evaluator = QualityEvaluator(model, tiny_models["whisper"], Budget(n_clips=2))
    tokenizer = evaluator.tokenizer
    for batch in evaluator.batches:
        words = tokenizer(" " + batch["text"], add_special_tokens=False).input_ids
        labels = batch["labels"][0]
        scored = labels[labels != -100].tolist()
        assert scored == words + [model.generation_config.eos_token_id]       # first text token first
        prompt = tokenizer.convert_ids_to_tokens(batch["decoder_input_ids"][0, :2].tolist())
        assert prompt == ["<|startoftranscript|>", "<|notimestamps|>"]
        # position i predicts decoder input i + 1: the first scored position reads <|notimestamps|>
        first = int((labels != -100).nonzero()[0])
        assert batch["decoder_input_ids"][0, first].item() == tokenizer.convert_tokens_to_ids("<|notimestamps|>")


def test_t5_and_whisper_objectives(tiny_models):
    for arch, metrics in (("t5", {"span_loss", "kl_from_dense"}), ("whisper", {"token_loss", "wer", "kl_from_dense"})):
        model = load_model(str(tiny_models[arch]))
        evaluator = QualityEvaluator(model, tiny_models[arch], Budget(n_tokens=256, window=64, n_clips=2))
        rows = evaluator.evaluate(model)
        assert {r["metric"] for r in rows} == metrics
        assert all(np.isfinite(r["value"]) for r in rows)


@pytest.fixture
def pruned_gpt2(tiny_models, tmp_path):
    out = tmp_path / "pruning"
    prune_runs(str(tiny_models["gpt2"]), out, [PruneSpec("global_magnitude", 0.5), PruneSpec("layer_magnitude", 0.9)],
               progress=False)
    return out


def test_evaluation_is_resumable_and_orders_degradation(tiny_models, pruned_gpt2, tmp_path):
    budget = Budget(n_tokens=128, window=64)
    table = evaluate_checkpoints(str(tiny_models["gpt2"]), pruned_gpt2, tmp_path / "q", budget, progress=False)
    assert {"method", "target_sparsity", "metric", "value", "n_tokens"} <= set(table.columns)
    kl = table[table.metric == "kl_from_dense"].set_index("method")["value"]
    assert kl["dense"] == pytest.approx(0, abs=1e-6) and kl["layer_magnitude"] > kl["global_magnitude"] > 0
    stamp = (tmp_path / "q" / "rows" / "dense.json").stat().st_mtime_ns
    again = evaluate_checkpoints(str(tiny_models["gpt2"]), pruned_gpt2, tmp_path / "q", budget, progress=False)
    assert (tmp_path / "q" / "rows" / "dense.json").stat().st_mtime_ns == stamp
    assert again.equals(table)


def test_a_run_pruned_again_under_its_label_is_scored_again(tiny_models, tmp_path):
    """wanda-0.5 re-pruned with another seed into the same folder: its rows must be recomputed, and equal a
    fresh evaluation of the new checkpoint."""
    import shutil
    model, budget = str(tiny_models["gpt2"]), Budget(n_tokens=64, window=32)
    pruning = tmp_path / "pruning"

    def prune(seed):
        shutil.rmtree(pruning / "wanda-0.5", ignore_errors=True)   # what the refusal tells a user to do
        prune_runs(model, pruning, [PruneSpec("wanda", 0.5, n_samples=2, seqlen=32, seed=seed)], progress=False)
        return (pruning / "wanda-0.5" / "compressed" / "model.safetensors").read_bytes()

    def kl(table):
        return table[(table.method == "wanda") & (table.metric == "kl_from_dense")]["value"].item()

    first = prune(0)
    before = kl(evaluate_checkpoints(model, pruning, tmp_path / "q", budget, progress=False))
    assert prune(1) != first                                     # another seed, another checkpoint
    again = kl(evaluate_checkpoints(model, pruning, tmp_path / "q", budget, progress=False))
    fresh = kl(evaluate_checkpoints(model, pruning, tmp_path / "fresh", budget, progress=False))
    assert again == fresh != before


def test_bad_pruning_dirs_are_one_line(tiny_models, pruned_gpt2, tmp_path):
    with pytest.raises(SparsescopeError, match="no pruning.csv"):
        evaluate_checkpoints(str(tiny_models["gpt2"]), tmp_path / "missing", tmp_path / "q", progress=False)
    with pytest.raises(SparsescopeError, match="holds pruning runs of"):
        evaluate_checkpoints(str(tiny_models["bert"]), pruned_gpt2, tmp_path / "q", progress=False)


def test_checkpoint_from_another_model_is_refused(tiny_models, pruned_gpt2, tmp_path):
    config_path = pruned_gpt2 / "global_magnitude-0.5" / "compressed" / "config.json"
    config = json.loads(config_path.read_text())
    config["sparsescope"]["source"] = "someone-else"
    config_path.write_text(json.dumps(config))
    with pytest.raises(SparsescopeError, match="was pruned from 'someone-else'"):
        evaluate_checkpoints(str(tiny_models["gpt2"]), pruned_gpt2, tmp_path / "q", Budget(n_tokens=64, window=32),
                             progress=False)


def test_text_shorter_than_a_window_and_empty_split(tiny_models, monkeypatch):
    model = load_model(str(tiny_models["gpt2"]))
    import sparsescope.evaluation.quality as quality
    monkeypatch.setattr(quality, "split_text", lambda split: "only a few words here")
    with pytest.raises(SparsescopeError, match="shorter than one window"):
        QualityEvaluator(model, tiny_models["gpt2"], Budget(n_tokens=64, window=32))
    monkeypatch.setattr(quality, "split_text", lambda split: "   ")
    with pytest.raises(SparsescopeError, match="empty"):
        QualityEvaluator(model, tiny_models["gpt2"], Budget(n_tokens=64, window=32))


def test_wikitext_without_the_hub_is_one_line():
    import os
    import subprocess
    import sys
    code = ("from sparsescope.evaluation.quality import evaluation_text\n"
            "try:\n    evaluation_text('wikitext2')\nexcept Exception as err:\n    print(type(err).__name__, err)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}).stdout.strip()
    assert out.startswith("SparsescopeError WikiText-2 could not be fetched") and "\n" not in out


# ------------------------------------------------------------------------------------ devices
@pytest.fixture
def fake_cuda(monkeypatch):
    """CUDA as the code sees it, on this CPU-only machine: a GPU named "Fake GPU"; every move to a device is
    recorded (what moved, where to) and left on the CPU."""
    import sparsescope.evaluation.quality as quality
    import sparsescope.evaluation.runtime as runtime
    moved = []

    def move(x, device):
        moved.append((type(x).__name__, str(device)))
        return x
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Fake GPU")
    monkeypatch.setattr(runtime, "to_device", move, raising=False)
    monkeypatch.setattr(quality, "to_device", move, raising=False)
    return moved


def test_evaluator_runs_models_and_inputs_on_its_device(tiny_models, fake_cuda):
    model = load_model(str(tiny_models["gpt2"]))
    budget = Budget(n_tokens=96, window=32)
    on_gpu = QualityEvaluator(model, tiny_models["gpt2"], budget)    # "auto": the (fake) GPU
    assert on_gpu.device == torch.device("cuda")
    moved_models = [where for what, where in fake_cuda if what == "GPT2LMHeadModel"]
    moved_inputs = [where for what, where in fake_cuda if what == "Tensor"]
    assert moved_models == ["cuda"] and moved_inputs == ["cuda"] * len(on_gpu.batches)  # 3 windows of 32
    assert len(on_gpu.batches) == 3
    kept = on_gpu.dense[0]["logp"]
    assert kept.device.type == "cpu" and kept.dtype == torch.float32  # the KL's reference: off the GPU
    on_cpu = QualityEvaluator(model, tiny_models["gpt2"], budget, device="cpu")
    assert on_gpu.evaluate(model) == on_cpu.evaluate(model)


def test_embeddings_move_with_the_device(tiny_models, fake_cuda):
    from transformers import BertModel
    encoder = BertModel.from_pretrained(tiny_models["bert"])               # no head: a sentence encoder
    evaluator = QualityEvaluator(encoder, tiny_models["bert"], Budget(n_passages=8), device="cuda")
    assert evaluator.objective == "sentence-embedding"
    assert {where for _, where in fake_cuda} == {"cuda"}
    assert {what for what, _ in fake_cuda} >= {"BertModel", "Tensor"}
    rows = {r["metric"]: r["value"] for r in evaluator.evaluate(encoder)}
    assert rows["cosine_to_dense"] == pytest.approx(1.0, abs=1e-5)
    assert rows["kl_from_dense"] == pytest.approx(0, abs=1e-6)


def test_quality_rows_name_their_device_and_bad_devices_are_one_line(tiny_models, pruned_gpt2, tmp_path,
                                                                     fake_cuda):
    budget = Budget(n_tokens=64, window=32)
    model = str(tiny_models["gpt2"])
    table = evaluate_checkpoints(model, pruned_gpt2, tmp_path / "q", budget, progress=False)
    assert set(table["device"]) == {"Fake GPU"} and len(table) == 3 * 3   # dense + 2 runs, 3 metrics each
    manifest = json.loads((tmp_path / "q" / "manifest.json").read_text())
    assert manifest["parameters"]["device"] == "Fake GPU"
    stamp = (tmp_path / "q" / "rows" / "dense.json").stat().st_mtime_ns
    # scores mean the same on any device: a CPU rerun keeps the GPU's rows, which still say where they ran
    again = evaluate_checkpoints(model, pruned_gpt2, tmp_path / "q", budget, progress=False, device="cpu")
    assert (tmp_path / "q" / "rows" / "dense.json").stat().st_mtime_ns == stamp
    assert set(again["device"]) == {"Fake GPU"}
    for bad, message in (("tpu", "unknown device 'tpu'"), ("cuda:3", "device 'cuda:3' does not exist")):
        with pytest.raises(SparsescopeError, match=message) as err:  # refused even with every row cached
            evaluate_checkpoints(model, pruned_gpt2, tmp_path / "q", budget, progress=False, device=bad)
        assert "\n" not in str(err.value)
