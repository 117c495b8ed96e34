"""Pruned checkpoints that really shrink: each pruned matrix as its kept values plus a compact index.

Format "sparsescope-sparse" v2 (v1 checkpoints read as before), a safetensors checkpoint:
- untouched tensors are stored as they were, under their own names;
- a sparse matrix `W` is stored as `W::values` (the stored entries in row-major order, original dtype)
  and `W::index` (uint8), described in the file's metadata (key "sparsescope": version, and per tensor
  shape, dtype, nnz = number of stored values, coding);
- `index` is one of three codings, the smallest that applies:
  - "bitmask": numpy.packbits, little bit order, over the flattened matrix (the compressed-tensors layout);
  - "rice": the gaps between kept entries in Rice code (a Golomb code, optimal for the geometric gaps of a
    random mask, so it tracks the mask entropy at high sparsity), parameter `k`;
  - "nm" (v2, N:M runs only): for every group of `m` consecutive inputs of one output — along dimension
    `in_dim` of the stored matrix (0 for GPT-2's Conv1D, which stores [in, out]) — the rank of the kept
    `n`-subset among the subsets of range(m) in lexicographic order (itertools.combinations order), in
    ceil(log2 C(m, n)) bits, least significant bit first, groups packed back to back in little bit order
    (output by output, inputs ascending); `n` values are stored per group. A group with fewer than `n`
    kept entries stores the subset completed by its lowest-index unkept positions (their +0.0 values
    stored), so it decodes bit-exactly. 2:4 costs 3 bits per 4 weights: 0.75 bit per weight;
- config.json carries `"sparsescope": {"format": "sparsescope-sparse", "version": 2, ...}`.

"Kept" means "bit pattern not all zero": -0.0 is kept as a value, so a round trip is bit-exact.
`load_pruned(folder)` returns a normal transformers model class, loaded by this module (transformers'
own `from_pretrained` cannot read the compressed tensors); `export_dense` writes a plain checkpoint that
`from_pretrained` opens.

Layout: codecs.py (index codes, bounds), safetensors.py (the one writer), checkpoint.py (writer, reader,
`load_pruned`, `export_dense`), size.py (what a checkpoint costs).
"""
from .checkpoint import (FORMAT, META_KEY, MODEL_FILES, READABLE_VERSIONS, SHARD_BYTES, VERSION,
                         CheckpointWriter, StoredTensors, copy_model_files, copy_weights_into, export_dense,
                         load_pruned, read_state_dict, sparse_descriptions)
from .codecs import (CODINGS, best_rice_parameter, binary_entropy, decode_sparse, encode_sparse,
                     entropy_bound_bits, index_bound_bits, kept_mask, nm_applies, nm_code_bits, rice_bits)
from .safetensors import SAFETENSORS_NAMES, write_safetensors
from .size import checkpoint_bytes, size_breakdown
