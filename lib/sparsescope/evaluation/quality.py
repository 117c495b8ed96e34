"""What pruning costs, measured with each model's own objective on held-out text.

Objectives, chosen from the model's architecture:
- causal-lm (GPT-2, SmolLM2): perplexity over non-overlapping windows of the concatenated text;
- masked-lm (BERT with its MLM head): masked-LM loss and top-1 accuracy, 15% of tokens masked, seeded;
- sentence-embedding (MiniLM, no head): cosine of pruned to dense mean-pooled embeddings, and retrieval
  top-1 (a passage's first half must find its own second half among all second halves);
- span-corruption (T5 v1.1): loss on T5's own noise (15% density, mean span 3, sentinels), seeded; for an
  encoder-decoder whose tokenizer has a mask token and no sentinels (BART), the same spans become one mask
  token each and the loss is on rebuilding the whole window (BART's text infilling);
- speech (Whisper): teacher-forced token loss over the transcript's tokens and end of text (not the
  forced prompt), and greedy word error rate on held-out sentences spoken by espeak-ng, both sides
  through Whisper's English text normaliser.
Every model also gets the mean KL divergence KL(dense || pruned) of its output distribution from the
dense model's on the same inputs (for a sentence encoder: its retrieval distribution, softmax of 20 x
cosine).

The evaluation text is the corpus's evaluation split (never calibrated on), or WikiText-2 test.
Models run on one device (`device`, "auto": CUDA when present); their outputs come back to the CPU in
float32, so scores mean the same on any device and the dense outputs kept for the KL take no GPU memory.
"""
from __future__ import annotations

import json
import math
import random
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..artifacts import atomic_write_text, cached_json, content_hashes, folder_hashes, manifest, write_json
from ..errors import SparsescopeError
from ..pruning.runs import read_pruning_table
from ..sources.corpus import split_text, wikitext2
from ..sources.registry import describe, load_model, model_folder
from ..sources.speech import spoken_features, whisper_prefix
from ..sources.weights import model_source_files, weight_files
from ..storage import load_pruned
from ..sources.devices import device_name, resolve_device, to_device

RETRIEVAL_SCALE = 20.0   # all-MiniLM's contrastive temperature (1/0.05)


ROWS_VERSION = 2

@dataclass(frozen=True)
class Budget:
    n_tokens: int = 4096     # tokens read, in windows (causal-lm scores all but each window's first:
                             # 8 windows of 512 score 4088)
    window: int = 512        # tokens per window (the papers use the model's full context)
    n_passages: int = 64     # sentence-embedding
    n_clips: int = 8         # speech
    seed: int = 0


def evaluation_text(corpus: str = "sotu") -> str:
    if corpus == "sotu":
        return split_text("evaluation")
    if corpus == "wikitext2":
        return wikitext2("test")
    raise SparsescopeError(f"unknown evaluation corpus {corpus!r}: use sotu (offline) or wikitext2 (hub)")


def clean(text: str) -> str:
    """Drop stage directions such as [Laughter] and squeeze spaces."""
    return re.sub(r"\s+", " ", re.sub(r"\[[^\]]*\]", " ", text)).strip()


def sentences(text: str, min_words: int = 8, max_words: int = 30) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", clean(text)) if min_words <= len(s.split()) <= max_words]


def objective(model) -> str:
    config, name = model.config, type(model).__name__
    if config.model_type == "whisper":
        return "speech"
    if config.is_encoder_decoder:
        return "span-corruption"
    if "CausalLM" in name or "LMHead" in name:
        return "causal-lm"
    if "MaskedLM" in name or "ForPreTraining" in name:
        return "masked-lm"
    return "sentence-embedding"


# ----------------------------------------------------------------------------- span corruption
def random_spans_noise_mask(length: int, noise_density: float, mean_span: float,
                            rng: np.random.Generator) -> np.ndarray:
    """T5's noise mask: round(length * density) noise tokens in spans of mean length `mean_span`,
    alternating with non-noise spans, starting with non-noise."""
    n_noise = min(max(int(round(length * noise_density)), 1), length - 1)
    n_spans = max(int(round(n_noise / mean_span)), 1)
    n_clean = length - n_noise

    def segment(total: int, parts: int) -> np.ndarray:
        marks = np.zeros(total - 1, dtype=bool)
        marks[rng.permutation(total - 1)[: parts - 1]] = True
        ids = np.concatenate([[0], np.cumsum(marks)])
        return np.bincount(ids, minlength=parts)

    noise_lengths, clean_lengths = segment(n_noise, n_spans), segment(n_clean, n_spans)
    mask = np.zeros(length, dtype=bool)
    pos = 0
    for c, n in zip(clean_lengths, noise_lengths):
        pos += c
        mask[pos:pos + n] = True
        pos += n
    return mask


def span_corrupt(ids: list[int], sentinels: list[int], eos: int, rng: np.random.Generator,
                 density: float = 0.15, mean_span: float = 3.0) -> tuple[list[int], list[int]]:
    """(inputs, targets): each noise span is replaced by one sentinel in the input, and the targets list
    each sentinel followed by the tokens it hides."""
    mask = random_spans_noise_mask(len(ids), density, mean_span, rng)
    inputs, targets, s = [], [], -1
    for i, tok in enumerate(ids):
        if mask[i]:
            if i == 0 or not mask[i - 1]:
                s += 1
                if s >= len(sentinels):
                    raise SparsescopeError("more noise spans than sentinel tokens: shorten the windows")
                inputs.append(sentinels[s])
                targets.append(sentinels[s])
            targets.append(tok)
        else:
            inputs.append(tok)
    return inputs + [eos], targets + [eos]


# ---------------------------------------------------------------------------------- word errors
def whisper_normalizer(tokenizer=None):
    """Whisper's English text normaliser (transformers' port of openai/whisper's): case, punctuation,
    contractions, numbers and currencies written one way, British spellings mapped to American by the
    tokenizer's normalizer.json. The packaged whisper-tiny-en folder has no normalizer.json: then the
    spelling map is empty and everything else still applies."""
    from transformers.models.whisper.english_normalizer import EnglishTextNormalizer
    return EnglishTextNormalizer(getattr(tokenizer, "english_spelling_normalizer", None) or {})


def word_error_rate(references: list[str], hypotheses: list[str], normalize=None) -> float:
    """Word-level Levenshtein distance summed over the pairs, over the reference words, after both sides
    went through `normalize` (default: Whisper's English normaliser without a spelling map)."""
    if len(references) != len(hypotheses):
        raise SparsescopeError(f"word error rate: {len(references)} references but {len(hypotheses)} "
                               "hypotheses: pass one hypothesis per reference")
    pairs = word_errors(references, hypotheses, normalize)
    return sum(e for e, _ in pairs) / max(sum(n for _, n in pairs), 1)


def word_errors(references: list[str], hypotheses: list[str], normalize=None) -> list[tuple[int, int]]:
    """(word-level Levenshtein distance, reference words) of each pair, after `normalize`."""
    normalize = normalize or whisper_normalizer()
    out = []
    for ref, hyp in zip(references, hypotheses):
        r, h = normalize(ref).split(), normalize(hyp or "").split()
        row = list(range(len(h) + 1))
        for i, rw in enumerate(r, 1):
            prev, row[0] = row[0], i
            for j, hw in enumerate(h, 1):
                prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (rw != hw))
        out.append((row[len(h)], len(r)))
    return out


def bootstrap_interval(sums, counts, transform=None, resamples: int = 2000,
                       seed: int = 0) -> tuple[float, float]:
    """95% bootstrap interval of transform(sum(sums) / sum(counts)), resampling the units (windows, clips,
    passages) with replacement; (nan, nan) with fewer than two units."""
    sums, counts = np.asarray(sums, dtype=float), np.asarray(counts, dtype=float)
    if len(sums) < 2:
        return (math.nan, math.nan)
    idx = np.random.default_rng(seed).integers(0, len(sums), (resamples, len(sums)))
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        stats = sums[idx].sum(1) / counts[idx].sum(1)
        stats = transform(stats) if transform else stats
    lo, hi = np.quantile(stats, [0.025, 0.975], method="nearest")
    return float(lo), float(hi)


def kl_divergence(dense_logp: torch.Tensor, logp: torch.Tensor) -> float:
    """Mean over positions of KL(dense || pruned) = sum_c p_c (log p_c - log q_c), p the dense model's
    distribution, from log-probabilities [positions, classes]. A class the dense model gives no mass
    (log p = -inf) adds exactly 0 (p log p -> 0); torch's kl_div and exp(p) * (p - q) give NaN there.
    A class the pruned model rules out where the dense one does not adds +inf, which it is."""
    return float(kl_per_position(dense_logp, logp).mean())


def kl_per_position(dense_logp: torch.Tensor, logp: torch.Tensor) -> torch.Tensor:
    terms = torch.where(dense_logp == -math.inf, 0.0, dense_logp.exp() * (dense_logp - logp))
    return terms.double().sum(-1)


# ------------------------------------------------------------------------------------ evaluator
class QualityEvaluator:
    """Builds the evaluation inputs once (from the dense model), then scores any model on them. Each model
    scored is moved (in place) to `device`; inputs follow it there, outputs come back to the CPU."""

    def __init__(self, dense_model, folder, budget: Budget = Budget(), corpus: str = "sotu",
                 device: str | torch.device = "auto"):
        from transformers import AutoTokenizer
        self.budget, self.folder = budget, folder
        self.device = resolve_device(device)
        self.objective = objective(dense_model)
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.text = evaluation_text(corpus)
        if not self.text.strip():
            raise SparsescopeError(f"the {corpus} evaluation text is empty: fetch the corpus again "
                                   "(make setup)")
        self.batches = getattr(self, f"_build_{self.objective.replace('-', '_')}")(dense_model)
        # the dense model's outputs, kept in float32 on the CPU for the KL (4096 tokens x 50k classes:
        # 0.8 GB), which leaves the GPU to the model being scored
        self.dense = list(self._outputs(dense_model))

    # -- inputs
    def _token_ids(self) -> list[int]:
        # the whole text at once: longer than the model's window (cut into windows later), so no warning
        text = self.text[: 40 * self.budget.n_tokens]
        return self.tokenizer(text, add_special_tokens=False, verbose=False).input_ids

    def _windows(self, ids: list[int], length: int) -> list[list[int]]:
        n = min(len(ids) // length, max(self.budget.n_tokens // length, 1))
        if n == 0:
            raise SparsescopeError(f"the evaluation text has {len(ids)} tokens, shorter than one window of "
                                   f"{length}: "
                                   "lower the window")
        return [ids[i * length:(i + 1) * length] for i in range(n)]

    def _build_causal_lm(self, model):
        window = min(self.budget.window, getattr(model.config, "max_position_embeddings", None)
                     or getattr(model.config, "n_positions", self.budget.window))
        return [{"input_ids": torch.tensor([w])} for w in self._windows(self._token_ids(), window)]

    def _build_masked_lm(self, model):
        rng = torch.Generator().manual_seed(self.budget.seed)
        window = min(self.budget.window, model.config.max_position_embeddings) - 2
        batches = []
        for w in self._windows(self._token_ids(), window):
            ids = torch.tensor([[self.tokenizer.cls_token_id, *w, self.tokenizer.sep_token_id]])
            chosen = torch.rand(ids.shape, generator=rng) < 0.15
            chosen[:, 0] = chosen[:, -1] = False
            labels = torch.where(chosen, ids, -100)
            masked = ids.masked_fill(chosen, self.tokenizer.mask_token_id)
            batches.append({"input_ids": masked, "labels": labels})
        return batches

    def _build_span_corruption(self, model):
        rng = np.random.default_rng(self.budget.seed)
        sentinels = self.tokenizer.convert_tokens_to_ids([f"<extra_id_{i}>" for i in range(100)])
        infilling = any(s is None or s == self.tokenizer.unk_token_id for s in sentinels)
        if infilling and self.tokenizer.mask_token_id is None:
            raise SparsescopeError(f"{self.folder}: the tokenizer has neither <extra_id_N> sentinels (T5's "
                                   "span corruption) nor a mask token (BART's text infilling): add its "
                                   "tokenizer files")
        start = model.generation_config.decoder_start_token_id
        start = model.config.pad_token_id if start is None else start
        batches = []
        for w in self._windows(self._token_ids(), min(self.budget.window, 512)):
            if infilling:  # BART: each noise span becomes one mask token; the decoder rebuilds the window
                masks = [self.tokenizer.mask_token_id] * len(w)
                inputs, _ = span_corrupt(w, masks, self.tokenizer.eos_token_id, rng)
                targets = [*w, self.tokenizer.eos_token_id]
            else:
                inputs, targets = span_corrupt(w, sentinels, self.tokenizer.eos_token_id, rng)
            batches.append({"input_ids": torch.tensor([inputs]), "labels": torch.tensor([targets]),
                            "decoder_input_ids": torch.tensor([[start, *targets[:-1]]])})
        return batches

    def _build_sentence_embedding(self, model):
        sents = [s for s in re.split(r"(?<=[.!?])\s+", clean(self.text)) if len(s.split()) >= 4]
        rng = random.Random(self.budget.seed)
        passages = []
        n = min(self.budget.n_passages, len(sents) // 8 - 1)
        for start in sorted(rng.sample(range(0, len(sents) - 8, 8), n)):
            passages.append((" ".join(sents[start:start + 4]), " ".join(sents[start + 4:start + 8])))
        if len(passages) < 2:
            raise SparsescopeError("the evaluation text is too short for a retrieval test")
        return [{"first": [p[0] for p in passages], "second": [p[1] for p in passages]}]

    def _build_speech(self, model):
        rng = random.Random(self.budget.seed)
        texts = rng.sample(sentences(self.text), self.budget.n_clips)
        prefix = whisper_prefix(model, self.tokenizer)
        features = spoken_features(self.folder, texts)
        batches = []
        for text, feats in zip(texts, features):
            words = self.tokenizer(" " + text, add_special_tokens=False, verbose=False).input_ids
            ids = prefix + words + [model.generation_config.eos_token_id]
            # the prompt after the start token (<|notimestamps|>) is forced, not predicted: not scored
            labels = [-100] * (len(prefix) - 1) + ids[len(prefix):]
            batches.append({"input_features": feats[None], "decoder_input_ids": torch.tensor([ids[:-1]]),
                            "labels": torch.tensor([labels]), "text": text})
        return batches

    # -- outputs
    @torch.no_grad()
    def _outputs(self, model):
        """Per batch, lazily: log-probs at the scored positions, their labels, and what a metric needs, all
        on the CPU (labels and metrics are computed there, whatever device the model runs on)."""
        to_device(model, self.device).eval()
        for batch in self.batches:
            if self.objective == "sentence-embedding":
                first, second = self._embed(model, batch["first"]), self._embed(model, batch["second"])
                sims = RETRIEVAL_SCALE * first @ second.t()
                yield {"logp": F.log_softmax(sims, -1), "labels": torch.arange(len(first)),
                       "embeddings": torch.cat([first, second])}
                continue
            inputs = {k: to_device(v, self.device) for k, v in batch.items() if k not in ("labels", "text")}
            logits = model(**inputs, use_cache=False).logits[0].float().cpu()
            if self.objective == "causal-lm":
                logp, labels = F.log_softmax(logits[:-1], -1), batch["input_ids"][0, 1:]
            else:
                labels = batch["labels"][0]
                keep = labels != -100
                logp, labels = F.log_softmax(logits[keep], -1), labels[keep]
            item = {"logp": logp, "labels": labels}
            if self.objective == "speech":
                generated = model.generate(inputs["input_features"], max_new_tokens=2 * len(labels) + 8)
                item["hypothesis"] = self.tokenizer.decode(generated[0].cpu(), skip_special_tokens=True)
            yield item

    def _embed(self, model, texts: list[str]) -> torch.Tensor:
        length = min(256, getattr(model.config, "max_position_embeddings", None) or 256)  # fit its context
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=length, return_tensors="pt")
        enc = {k: to_device(v, self.device) for k, v in enc.items()}
        hidden = model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).float()
        return F.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).float().cpu()

    def evaluate(self, model) -> list[dict]:
        """Rows (metric, value, n_tokens) for `model`, the KL from the dense model included."""
        return self.score(self._outputs(model))

    def evaluate_dense(self) -> list[dict]:
        """The dense model's rows, from the outputs kept at construction (no second forward)."""
        return self.score(self.dense)

    def score(self, outputs) -> list[dict]:
        """Rows (metric, value, n_tokens, ci_lo, ci_hi[, count, total]): 95% bootstrap intervals over the
        windows or clips (over the passages when there is one batch); accuracies and WER with their counts."""
        nll, kl, hit, n, hypotheses, embeddings = [], [], [], [], [], None
        for out, dense in zip(outputs, self.dense):
            logp, labels = out["logp"], out["labels"]
            nll.append(F.nll_loss(logp, labels, reduction="none").double())
            kl.append(kl_per_position(dense["logp"], logp))
            hit.append((logp.argmax(-1) == labels).double())
            n.append(labels.numel())
            hypotheses.append(out.get("hypothesis"))
            embeddings = out.get("embeddings")
        if len(n) == 1:  # one batch (retrieval): its positions, the passages, are the units
            nll, kl, hit, n = [[float(x) for x in v[0]] for v in (nll, kl, hit)] + [[1] * n[0]]
        else:
            nll, kl, hit = [[float(x.sum()) for x in v] for v in (nll, kl, hit)]
        total = sum(n)
        rows = []

        def add(metric, sums, counts, transform=None, **extra):
            value = sum(sums) / sum(counts)
            lo, hi = bootstrap_interval(sums, counts, transform)
            rows.append({"metric": metric, "value": transform(value) if transform else value,
                         "n_tokens": total, "ci_lo": lo, "ci_hi": hi, **extra})

        if self.objective == "causal-lm":
            add("perplexity", nll, n, np.exp)
            add("nll", nll, n)
        elif self.objective in ("masked-lm", "span-corruption", "speech"):
            loss = {"masked-lm": "mlm_loss", "span-corruption": "span_loss"}.get(self.objective, "token_loss")
            add(loss, nll, n)
            if self.objective == "masked-lm":
                add("mlm_top1", hit, n, count=int(sum(hit)), total=total)
            if self.objective == "speech":
                references = [b["text"] for b in self.batches]
                pairs = word_errors(references, hypotheses, whisper_normalizer(self.tokenizer))
                errors, words = [e for e, _ in pairs], [w for _, w in pairs]
                add("wer", errors, words, count=sum(errors), total=sum(words),
                    transcripts=[list(t) for t in zip(references, hypotheses)])
        else:
            cosines = (embeddings * self.dense[0]["embeddings"]).sum(-1).double().tolist()
            add("retrieval_top1", hit, n, count=int(sum(hit)), total=total)
            add("cosine_to_dense", cosines, [1] * len(cosines))
        add("kl_from_dense", kl, n)
        return rows


def split_transcripts(rows: list[dict]) -> pd.DataFrame:
    """Take the speech rows' (reference, hypothesis) pairs out of `rows`: one table row per run and clip."""
    return pd.DataFrame([{"method": r["method"], "target_sparsity": r["target_sparsity"], "nm": r["nm"],
                          "clip": i, "reference": ref, "hypothesis": hyp}
                         for r in rows for i, (ref, hyp) in enumerate(r.pop("transcripts", None) or [])])


def evaluate_checkpoints(model: str, pruning_dir, out_dir, budget: Budget = Budget(), corpus: str = "sotu",
                         progress: bool = True, device: str | torch.device = "auto") -> pd.DataFrame:
    """Score the dense model and every checkpoint of a notebook-02 out_dir on `device`; write
    out_dir/quality.csv, each row naming the device that scored it (rows cached as `quality_rows` keeps
    them, so a rerun only evaluates what is missing or changed)."""
    started = time.time()
    device = resolve_device(device)  # a bad device fails here, even when every row is cached
    pruning_dir, out_dir = Path(pruning_dir), Path(out_dir)
    runs = read_pruning_table(pruning_dir)
    owner = (pruning_dir / "model.txt").read_text().strip() if (pruning_dir / "model.txt").exists() else None
    if owner != model:
        raise SparsescopeError(f"{pruning_dir} holds pruning runs of {owner!r}, not {model!r}: pass that "
                               "model's pruning_dir")
    rows = quality_rows(model, [None, *runs.itertuples()], out_dir / "rows", budget, corpus, progress, device)
    transcripts = split_transcripts(rows)
    if len(transcripts):  # what each run transcribes, for the report's examples
        atomic_write_text(out_dir / "transcripts.csv", transcripts.to_csv(index=False))
    table = pd.DataFrame(rows)
    atomic_write_text(out_dir / "quality.csv", table.to_csv(index=False))
    info = describe(model)
    parameters = {**quality_settings(model, budget, corpus), "device": device_name(device)}
    write_json(manifest(info, weight_files(Path(info["folder"])), parameters, time.time() - started),
               out_dir / "manifest.json")
    return table


def quality_settings(model: str, budget: Budget, corpus: str) -> dict:
    # rows: the version of what a row holds (2: bootstrap intervals, counts, transcripts), so cached rows of
    # an older version are scored again instead of lacking them
    return {"model": model, "budget": asdict(budget), "corpus": corpus, "rows": ROWS_VERSION}


def quality_rows(model: str, runs: list, rows_dir, budget: Budget = Budget(), corpus: str = "sotu",
                 progress: bool = True, device: str | torch.device = "auto") -> list[dict]:
    """The scores of each of `runs` (rows of pruning.csv; None: the dense model), each kept in
    rows_dir/<run>.json keyed by what it measures: the SHA-256 of the checkpoint's files (so a run re-pruned
    under the same label, e.g. with another seed, is scored again), of the dense model's source files, and
    the budget and corpus. The device is not part of that key: scores mean the same on any device, so a GPU
    rerun keeps CPU rows."""
    device = resolve_device(device)
    settings = quality_settings(model, budget, corpus)
    folder = Path(model_folder(model))
    dense_files = content_hashes(model_source_files(folder), folder)
    evaluator = None

    def score(run) -> list[dict]:
        nonlocal evaluator
        if evaluator is None:  # built lazily: a finished evaluation needs no model at all
            dense = load_model(model, dtype=torch.float32)
            evaluator = QualityEvaluator(dense, model_folder(model), budget, corpus, device)
        where = {"device": device_name(device)}
        if run is None:
            dense_meta = {"method": "dense", "target_sparsity": 0.0, "nm": "", **where}
            return [{**dense_meta, **r} for r in evaluator.evaluate_dense()]
        config = json.loads((Path(run.checkpoint) / "config.json").read_text())
        source = config.get("sparsescope", {}).get("source")
        if source is not None and source != model:
            raise SparsescopeError(f"{run.checkpoint} was pruned from {source!r}, not {model!r}")
        scores = evaluator.evaluate(load_pruned(run.checkpoint, dtype=torch.float32))
        meta = {"method": run.method, "target_sparsity": run.target_sparsity, "nm": run.nm, **where}
        return [{**meta, **r} for r in scores]

    rows = []
    for run in tqdm(runs, desc="evaluating", disable=not progress):
        label = "dense" if run is None else Path(run.checkpoint).parent.name
        # a run's scores depend on its checkpoint and on the dense model (inputs, KL reference)
        key = {**settings, "dense_files": dense_files}
        if run is not None:
            key["checkpoint_files"] = folder_hashes(run.checkpoint)
        rows += cached_json(Path(rows_dir) / f"{label}.json", key, lambda: score(run))
    return rows
