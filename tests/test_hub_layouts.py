"""The seed repos in the hub's own layouts (tests/hub_layouts.py), loaded offline as transformers loads them.

Tiny configs (2 layers, width 64, real vocabularies) of openai-community/gpt2-xl (bare-name safetensors with causal
mask buffers), google-bert/bert-large-uncased (legacy gamma/beta safetensors with NSP head and pooler) and
google/t5-v1_1-xl (pickle with aliased embeddings) are written into a temporary Hugging Face cache; a separate
process with HF_HUB_OFFLINE=1 and HF_HUB_CACHE pointing there resolves and loads them. Expectations (renames,
counts) are written out here by hand, independent of sparsescope and of the writer's own bookkeeping.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import HAVE_SPM, hand_counts, hub_layouts as hl, snapshot

NAMES = ("gpt2-xl", "bert-large", "t5-v1_1-xl")


@pytest.fixture(scope="module")
def hub_cache(seed_hub) -> Path:
    return seed_hub


# ---------------------------------------------------------------------------------------------------------------
# (b) counts: the real configs from shapes only, and the tiny files on disk, against a hand formula
# ---------------------------------------------------------------------------------------------------------------

def test_real_size_counts_from_shapes():
    """The real configs give the study's counts (no multi-GB file is written)."""
    expected = {"gpt2-xl": (1_557_611_200, 1_474_560_000), "bert-large": (336_226_108, 301_989_888),
                "t5-v1_1-xl": (2_849_757_184, 2_717_908_992)}
    for name in NAMES:
        config = hl.LAYOUTS[name].config
        assert hand_counts(name, config) == expected[name]
        assert hl.expected_counts(name, config) == expected[name]
        assert hl.count_weights(hl.hub_tensor_specs(name)) == expected[name]
    # gpt2-xl's real header holds 1,607,942,848 elements: the parameters plus 48 masks of 1024 x 1024
    specs = hl.hub_tensor_specs("gpt2-xl")
    assert sum(s.numel for s in specs) == 1_607_942_848
    assert sum(s.nbytes for s in hl.hub_tensor_specs("t5-v1_1-xl") if not s.alias_of) == 2_849_757_184 * 4


@pytest.mark.parametrize("name", NAMES)
def test_file_counts_match_hand_formula(hub_cache, name):
    layout = hl.LAYOUTS[name]
    assert hl.count_file_weights(snapshot(hub_cache, layout.repo_id)) == hand_counts(name, hl.tiny_config(name))


# ---------------------------------------------------------------------------------------------------------------
# the files hold the hub's names, dtypes, buffers and aliases
# ---------------------------------------------------------------------------------------------------------------

def test_gpt2_file_is_bare_names_with_masks(hub_cache):
    c = hl.tiny_config("gpt2-xl")
    snap = snapshot(hub_cache, "openai-community/gpt2-xl")
    assert sorted(p.name for p in snap.iterdir()) == ["config.json", "generation_config.json", "merges.txt",
                                                      "model.safetensors", "tokenizer.json", "vocab.json"]
    header = hl.safetensors_header(snap / "model.safetensors")
    assert header.pop("__metadata__") == {"format": "pt"}
    assert not any(k.startswith("transformer.") or k.startswith("lm_head") for k in header)
    assert {"wte.weight", "wpe.weight", "ln_f.weight", "ln_f.bias"} <= set(header)
    assert not any(k.endswith("masked_bias") for k in header)
    d, n = c["n_embd"], c["n_ctx"]
    assert header["h.0.attn.c_attn.weight"]["shape"] == [d, 3 * d]       # Conv1D stored [in, out]
    assert header["h.0.mlp.c_proj.weight"]["shape"] == [4 * d, d]
    masks = [k for k in header if k.endswith(".attn.bias")]
    assert len(masks) == c["n_layer"]
    tensors = hl.file_tensors(snap)
    for k in masks:
        assert header[k]["dtype"] == "F32" and header[k]["shape"] == [1, 1, n, n]
        assert torch.equal(tensors[k], torch.tril(torch.ones(n, n)).view(1, 1, n, n))
    assert all(v["dtype"] == "F32" for v in header.values())


def test_bert_file_is_legacy_pretraining_layout(hub_cache):
    snap = snapshot(hub_cache, "google-bert/bert-large-uncased")
    header = hl.safetensors_header(snap / "model.safetensors")
    header.pop("__metadata__")
    assert all(k.startswith(("bert.", "cls.")) for k in header)
    assert not any(re.search(r"LayerNorm\.(weight|bias)$", k) for k in header)
    assert {"bert.embeddings.LayerNorm.gamma", "bert.embeddings.LayerNorm.beta",
            "cls.predictions.transform.LayerNorm.gamma", "bert.encoder.layer.1.output.LayerNorm.beta"} <= set(header)
    assert {"cls.predictions.bias", "cls.predictions.transform.dense.weight", "cls.seq_relationship.weight",
            "cls.seq_relationship.bias", "bert.pooler.dense.weight", "bert.pooler.dense.bias"} <= set(header)
    assert "cls.predictions.decoder.weight" not in header and "cls.predictions.decoder.bias" not in header
    assert "bert.embeddings.position_ids" not in header
    assert all(v["dtype"] == "F32" for v in header.values())


def test_t5_pickle_aliases_one_storage(hub_cache):
    c = hl.tiny_config("t5-v1_1-xl")
    snap = snapshot(hub_cache, "google/t5-v1_1-xl")
    assert "pytorch_model.bin" in {p.name for p in snap.iterdir()}
    assert not any(p.suffix == ".safetensors" for p in snap.iterdir())
    state = torch.load(snap / "pytorch_model.bin", map_location="cpu", weights_only=True)
    shared = state["shared.weight"]
    for alias in ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight"):
        assert state[alias].untyped_storage().data_ptr() == shared.untyped_storage().data_ptr()
        assert torch.equal(state[alias], shared)
    assert state["lm_head.weight"].untyped_storage().data_ptr() != shared.untyped_storage().data_ptr()
    assert not torch.equal(state["lm_head.weight"], shared)
    biases = sorted(k for k in state if "relative_attention_bias" in k)
    assert biases == ["decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                      "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"]
    assert state[biases[0]].shape == (c["relative_attention_num_buckets"], c["num_heads"])
    assert all(t.dtype == torch.float32 for t in state.values())
    # the data of the three embedding names is stored once
    size = (snap / "pytorch_model.bin").stat().st_size
    assert size < sum(t.numel() for k, t in state.items() if not k.endswith("embed_tokens.weight")) * 4 + (1 << 20)


def test_writers_agree_with_torch_and_safetensors(tmp_path):
    """The streaming writers write what torch.save / safetensors' save_file write for the same tensors."""
    import collections
    import zipfile
    from safetensors.torch import save_file
    specs = [hl.TensorSpec("z.weight", (3, 5), torch.float32, "param", "normal"),
             hl.TensorSpec("b.weight", (3, 5), torch.float32, "param", "normal", alias_of="z.weight"),
             hl.TensorSpec("c.bias", (7,), torch.float32, "param", "gain"),
             hl.TensorSpec("h.10.x", (2,), torch.float32, "param", "normal"),
             hl.TensorSpec("h.2.x", (2,), torch.float32, "param", "normal"),
             hl.TensorSpec("d.ids", (1, 4), torch.int64, "buffer", "arange")]
    made = {s.name: hl.make_tensor(s, seed=3) for s in specs if not s.alias_of}
    # torch zip pickle: an old `state_dict()` holds distinct tensors (detach()) sharing one storage
    (tmp_path / "mine").mkdir()
    (tmp_path / "ref").mkdir()
    hl.write_torch_pickle_streaming(tmp_path / "mine" / "pytorch_model.bin", specs, lambda s: hl.make_tensor(s, seed=3))
    torch.save(collections.OrderedDict((s.name, made[s.alias_of or s.name].detach()) for s in specs),
               tmp_path / "ref" / "pytorch_model.bin")
    mine, ref = (zipfile.ZipFile(tmp_path / d / "pytorch_model.bin") for d in ("mine", "ref"))
    assert mine.namelist() == ref.namelist()
    for record in mine.namelist():
        if not record.endswith("serialization_id"):  # a random id per save
            assert mine.read(record) == ref.read(record), record
    loaded = torch.load(tmp_path / "mine" / "pytorch_model.bin", weights_only=True, mmap=True)
    assert loaded["z.weight"].untyped_storage().data_ptr() == loaded["b.weight"].untyped_storage().data_ptr()
    # safetensors: byte for byte what the library writes (order by dtype then name, header padded to 8 bytes)
    plain = [s for s in specs if not s.alias_of]
    hl.write_safetensors_streaming(tmp_path / "mine.safetensors", plain, lambda s: hl.make_tensor(s, seed=3))
    save_file(made, str(tmp_path / "ref.safetensors"), metadata={"format": "pt"})
    assert (tmp_path / "mine.safetensors").read_bytes() == (tmp_path / "ref.safetensors").read_bytes()


def test_packaged_vocabularies_are_gpt2_and_bert_uncased():
    files = hl.gpt2_tokenizer_files()  # raises unless tiktoken's reference gpt2 encodings are reproduced
    vocab = json.loads(files["vocab.json"])
    assert len(vocab) == 50257 and vocab["<|endoftext|>"] == 50256 and vocab["hello"] == 31373
    merges = files["merges.txt"].decode().splitlines()
    assert merges[0] == "#version: 0.2" and len(merges) == 50001
    bert = hl.bert_tokenizer_files()["vocab.txt"].decode().splitlines()
    assert len(bert) == 30522 and bert[101] == "[CLS]" and bert[1996] == "the"


def test_offline_cache_layout(hub_cache):
    for repo_id in ("openai-community/gpt2-xl", "gpt2-xl", "google-bert/bert-large-uncased", "bert-large-uncased",
                    "google/t5-v1_1-xl"):
        folder = hl.repo_folder(hub_cache, repo_id)
        commit = (folder / "refs" / "main").read_text()
        assert re.fullmatch(r"[0-9a-f]{40}", commit)
        for link in (folder / "snapshots" / commit).iterdir():
            assert link.is_symlink() and link.resolve().parent == (folder / "blobs").resolve()
        tree = json.loads((folder / "trees" / f"{commit}.json").read_text())
        assert set(tree["files"]) == {p.name for p in (folder / "snapshots" / commit).iterdir()}


def test_sharded_t5_pickle(tmp_path):
    root = tmp_path / "cache"
    info = hl.write_repo(root, "t5-v1_1-xl", tiny=True, sharded=True, shard_bytes=2_000_000, tokenizer=False)
    shards = sorted(p.name for p in info.snapshot.glob("pytorch_model-*.bin"))
    assert len(shards) >= 3 and shards[0] == f"pytorch_model-00001-of-{len(shards):05d}.bin"
    index = json.loads((info.snapshot / "pytorch_model.bin.index.json").read_text())
    wm = index["weight_map"]
    assert wm["encoder.embed_tokens.weight"] == wm["decoder.embed_tokens.weight"] == wm["shared.weight"]
    unsharded = hl.write_repo(tmp_path / "one", "t5-v1_1-xl", tiny=True, tokenizer=False)
    one = hl.file_tensors(unsharded.snapshot)
    many = hl.file_tensors(info.snapshot)
    assert set(one) == set(many) == set(wm) and all(torch.equal(one[k], many[k]) for k in one)
    assert index["metadata"]["total_size"] == hand_counts("t5-v1_1-xl", hl.tiny_config("t5-v1_1-xl"))[0] * 4


# ---------------------------------------------------------------------------------------------------------------
# (a) + (c): a fresh process with HF_HUB_OFFLINE=1 resolves, loads and tokenizes each repo id
# ---------------------------------------------------------------------------------------------------------------

OFFLINE_CHECK = r"""
import json, re, sys, traceback, torch
from huggingface_hub import snapshot_download
import transformers
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForSeq2SeqLM, AutoTokenizer
from safetensors.torch import load_file
transformers.logging.set_verbosity_error()

def check(repo_id, kind, tokenizer):
    snap = snapshot_download(repo_id)
    # the suite's own patterns (sparsescope.sources.registry HUB_PATTERNS, then + HUB_PICKLE_PATTERNS)
    patterns = ["*.json", "*.safetensors", "*.txt", "*.model", "tokenizer*"]
    assert snapshot_download(repo_id, allow_patterns=patterns) == snap
    assert snapshot_download(repo_id, allow_patterns=patterns + ["pytorch_model*.bin",
                                                                 "pytorch_model*.bin.index.json"]) == snap
    cls = {"gpt2": AutoModelForCausalLM, "bert": AutoModelForMaskedLM, "t5": AutoModelForSeq2SeqLM}[kind]
    model, info = cls.from_pretrained(repo_id, output_loading_info=True)
    files = (load_file(snap + "/model.safetensors") if kind != "t5"
             else torch.load(snap + "/pytorch_model.bin", weights_only=True))
    def rename(k):  # checkpoint name -> model name, as transformers must map it
        if kind == "gpt2":
            return None if k.endswith(".attn.bias") else "transformer." + k
        if kind == "bert":
            if k.startswith(("bert.pooler.", "cls.seq_relationship.")):
                return None
            return re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", k))
        return k
    tied = {"gpt2": {"lm_head.weight": "wte.weight"},
            "bert": {"cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight",
                     "cls.predictions.decoder.bias": "cls.predictions.bias"},
            "t5": {}}[kind]
    state = model.state_dict()
    expected = {rename(k): v for k, v in files.items() if rename(k) is not None}
    expected.update({k: files[v] for k, v in tied.items()})
    out = {"snapshot": snap, "missing": sorted(info["missing_keys"]), "unexpected": sorted(info["unexpected_keys"]),
           "mismatched": sorted(map(str, info["mismatched_keys"])),
           "unaccounted": sorted(set(state) - set(expected)), "absent": sorted(set(expected) - set(state)),
           "different": sorted(k for k in expected if k in state and not torch.equal(state[k], expected[k])),
           "n_params": sum(p.numel() for p in model.parameters()),
           "dtypes": sorted({str(p.dtype) for p in model.parameters()})}
    if kind == "t5":
        out["lm_head_tied"] = model.lm_head.weight is model.shared.weight
        out["embed_tied"] = model.encoder.embed_tokens.weight is model.shared.weight is model.decoder.embed_tokens.weight
    if tokenizer:
        tok = AutoTokenizer.from_pretrained(repo_id)
        out["tokenizer"] = type(tok).__name__
        out["len"] = len(tok)
        text = "hello world" if kind == "gpt2" else "The State of the Union is strong."
        out["ids"] = tok(text).input_ids
        if kind == "t5":
            out["extra_0"] = tok.convert_tokens_to_ids("<extra_id_0>")
            out["extra_99"] = tok.convert_tokens_to_ids("<extra_id_99>")
            out["eos"] = tok.eos_token_id
            out["round_trip"] = tok.decode(out["ids"], skip_special_tokens=True)
    return out

results = {}
for repo_id, kind, tokenizer in json.loads(sys.argv[1]):
    try:
        results[repo_id] = check(repo_id, kind, tokenizer)
    except Exception:
        results[repo_id] = {"error": traceback.format_exc()}
print("RESULT " + json.dumps(results))
"""

REPOS = [("openai-community/gpt2-xl", "gpt2", True), ("gpt2-xl", "gpt2", True),
         ("google-bert/bert-large-uncased", "bert", True), ("bert-large-uncased", "bert", True),
         ("google/t5-v1_1-xl", "t5", HAVE_SPM)]


@pytest.fixture(scope="module")
def offline(hub_cache) -> dict:
    """One fresh process, HF_HUB_OFFLINE=1 and HF_HUB_CACHE at the tiny cache, loads every repo id."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_CACHE": str(hub_cache),
           "HF_HOME": str(hub_cache / "_home"), "HF_HUB_DISABLE_TELEMETRY": "1"}
    env.pop("HUGGINGFACE_HUB_CACHE", None)
    env.pop("TRANSFORMERS_CACHE", None)
    proc = subprocess.run([sys.executable, "-c", OFFLINE_CHECK, json.dumps(REPOS)], env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def result(offline: dict, repo_id: str) -> dict:
    r = offline[repo_id]
    assert "error" not in r, r.get("error")
    return r


@pytest.mark.parametrize("repo_id", ["openai-community/gpt2-xl", "gpt2-xl"])
def test_gpt2_xl_loads_offline(hub_cache, offline, repo_id):
    r = result(offline, repo_id)
    assert r["snapshot"] == str(snapshot(hub_cache, repo_id))
    assert r["missing"] == r["unexpected"] == r["mismatched"] == []   # attn.bias ignored, lm_head tied
    assert r["unaccounted"] == r["absent"] == r["different"] == []
    assert r["n_params"] == hand_counts("gpt2-xl", hl.tiny_config("gpt2-xl"))[0]
    assert r["dtypes"] == ["torch.float32"]
    assert r["tokenizer"].startswith("GPT2") and r["len"] == 50257 and r["ids"] == [31373, 995]


@pytest.mark.parametrize("repo_id", ["google-bert/bert-large-uncased", "bert-large-uncased"])
def test_bert_large_uncased_loads_offline(offline, repo_id):
    r = result(offline, repo_id)
    assert r["missing"] == r["mismatched"] == []                      # gamma/beta renamed, decoder tied
    assert r["unexpected"] == ["bert.pooler.dense.bias", "bert.pooler.dense.weight", "cls.seq_relationship.bias",
                               "cls.seq_relationship.weight"]
    assert r["unaccounted"] == r["absent"] == r["different"] == []
    c = hl.tiny_config("bert-large")
    d = c["hidden_size"]
    assert r["n_params"] == hand_counts("bert-large", c)[0] - (d * d + d) - (2 * d + 2)   # no pooler, no NSP
    assert r["tokenizer"].startswith("Bert") and r["len"] == 30522
    assert r["ids"][0] == 101 and r["ids"][-1] == 102 and 1996 in r["ids"]


def test_t5_v1_1_xl_loads_offline(offline):
    r = result(offline, "google/t5-v1_1-xl")
    assert r["missing"] == r["unexpected"] == r["mismatched"] == []
    assert r["unaccounted"] == r["absent"] == r["different"] == []
    assert r["embed_tied"] and not r["lm_head_tied"]                  # aliases tied, v1.1's own lm_head kept
    assert r["n_params"] == hand_counts("t5-v1_1-xl", hl.tiny_config("t5-v1_1-xl"))[0]
    if not HAVE_SPM:
        pytest.skip("T5's spiece.model needs `sentencepiece` and `protobuf` (not installed)")
    assert r["tokenizer"] == "T5Tokenizer" and r["len"] == 1000 + 100
    assert r["eos"] == 1 and r["ids"][-1] == 1
    assert r["extra_0"] == 1099 and r["extra_99"] == 1000                # T5: sentinels from the top, in reverse
    assert r["round_trip"] == "The State of the Union is strong."


def test_optional_buffers_of_other_hub_files(tmp_path):
    """masked_bias (older GPT-2 files), int64 position_ids (BERT files of transformers 3-4.30), T5's old cross bias:
    written on request, never counted as weights."""
    gpt2 = hl.write_repo(tmp_path, "gpt2-xl", tiny=True, masked_bias=True, tokenizer=False, aliases=False)
    header = hl.safetensors_header(gpt2.snapshot / "model.safetensors")
    assert header["h.1.attn.masked_bias"]["shape"] == [] and header["h.1.attn.masked_bias"]["dtype"] == "F32"
    assert float(hl.file_tensors(gpt2.snapshot)["h.1.attn.masked_bias"]) == -1e4
    bert = hl.write_repo(tmp_path, "bert-large", tiny=True, position_ids=True, tokenizer=False, aliases=False)
    header = hl.safetensors_header(bert.snapshot / "model.safetensors")
    assert header["bert.embeddings.position_ids"]["dtype"] == "I64"
    assert next(k for k in header if k != "__metadata__") == "bert.embeddings.position_ids"  # I64 sorts first
    t5 = hl.write_repo(tmp_path, "t5-v1_1-xl", tiny=True, t5_cross_attention_bias=True, tokenizer=False)
    assert "decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight" in hl.file_tensors(t5.snapshot)
    for name, info in (("gpt2-xl", gpt2), ("bert-large", bert)):
        assert hl.count_file_weights(info.snapshot) == hand_counts(name, hl.tiny_config(name))
