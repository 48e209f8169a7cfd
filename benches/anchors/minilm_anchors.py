"""all-MiniLM-L6-v2 anchors: sentences/s with PyTorch eager and ONNX Runtime on the CPU, on the
very texts `benches/minilm.rs` embeds, to put burnserve's in-process numbers next to.

Run through `benches/anchors.sh` (it installs the venv). From the repository root:
    python benches/anchors/minilm_anchors.py [--quick] [--rounds N] [--record]
BUDGET_S (default 6) is the seconds each measurement runs. Offline: the model comes from
models/repository/minilm/1/ (scripts/fetch-minilm.sh); 2 threads for both engines.

What it does:
1. Exports the model (encoder + masked mean pooling + L2 normalisation, the pipeline that
   sentence-transformers runs for this model) to target/anchors/minilm.onnx, once; dynamic batch
   and sequence axes.
2. Correctness: the first 20 short and the first 20 long texts through both engines, max abs
   difference < 1e-4; writes them with their torch embeddings to target/anchors/reference.json.
3. Throughput: {torch, onnxruntime} x {short, long} x batch {1, 32}, tokenization included (as
   the Rust in-process bench), each configuration measured in rounds alternating
   torch, ort, torch, ort; reports the median of the rounds and the cores kept busy (process CPU
   time / wall time). Writes target/anchors/anchors.json (and benches/results/minilm_anchors.json
   with --record).
"""

import argparse
import hashlib
import json
import logging
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import BertModel, PreTrainedTokenizerFast  # noqa: E402

MODEL_DIR = Path("models/repository/minilm/1")
OUT_DIR = Path("target/anchors")
ONNX_PATH = OUT_DIR / "minilm.onnx"
RECORD_PATH = Path("benches/results/minilm_anchors.json")
MAX_TOKENS = 256  # model.toml params.max_tokens, sentence-transformers' max_seq_length
THREADS = 2
TOLERANCE = 1e-4
# Bump when the exported graph changes (inputs, outputs, pooling): forces a new export.
EXPORT_FORMAT = 2
# Batches padded to their longest text, cut at MAX_TOKENS (the fixed padding to 128 and the
# truncation at 128 in tokenizer.json are overridden, as burnserve does).
TOKENIZE = dict(padding=True, truncation=True, max_length=MAX_TOKENS)

# benches/minilm.rs: WORDS and texts(count, words), index for index.
WORDS = [
    "the", "model", "server", "answers", "every", "request", "quickly", "while",
    "batching", "sentences", "from", "many", "clients", "on", "a", "small",
    "machine", "with", "two", "cores", "and", "reports", "latency", "throughput",
    "memory", "in", "one", "file", "engineers", "read", "before", "deciding",
]  # fmt: skip


def texts(count, words):
    """`count` texts of `words` words each, all different (benches/minilm.rs `texts`)."""
    n = len(WORDS)
    return [
        " ".join(WORDS[(i * 7 + w * 3 + w // n) % n] for w in range(words))
        for i in range(count)
    ]


class Embedder(torch.nn.Module):
    """BERT encoder, then mean over the real tokens and L2 normalisation (sentence-transformers'
    Pooling(mean) + Normalize for all-MiniLM-L6-v2)."""

    def __init__(self, bert):
        super().__init__()
        self.bert = bert

    def forward(self, input_ids, attention_mask):
        hidden = self.bert(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=torch.zeros_like(input_ids),
        ).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        summed = (hidden * mask).sum(dim=1)
        counts = mask.sum(dim=1).clamp(min=1e-9)
        return torch.nn.functional.normalize(summed / counts, p=2.0, dim=1)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def export_onnx(model, tokenizer, model_sha):
    """target/anchors/minilm.onnx, exported again only when the weights, torch or the graph
    (EXPORT_FORMAT) changed."""
    meta_path = ONNX_PATH.with_suffix(".meta.json")
    meta = {
        "format": EXPORT_FORMAT,
        "model_sha256": model_sha,
        "torch": torch.__version__,
        "max_tokens": MAX_TOKENS,
    }
    if ONNX_PATH.is_file() and meta_path.is_file():
        if json.loads(meta_path.read_text()) == meta:
            log(f"onnx: reusing {ONNX_PATH}")
            return
    log(f"onnx: exporting to {ONNX_PATH} (once) ...")
    t0 = time.perf_counter()
    sample = tokenizer(texts(2, 13), **TOKENIZE, return_tensors="pt")
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence", max=MAX_TOKENS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            model,
            (sample["input_ids"], sample["attention_mask"]),
            input_names=["input_ids", "attention_mask"],
            output_names=["sentence_embedding"],
            dynamic_shapes={
                "input_ids": {0: batch, 1: seq},
                "attention_mask": {0: batch, 1: seq},
            },
            dynamo=True,
            verbose=False,
            external_data=False,
        )
    tmp = ONNX_PATH.with_suffix(".onnx.tmp")
    program.save(str(tmp), external_data=False)
    tmp.replace(ONNX_PATH)
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    size = ONNX_PATH.stat().st_size / 2**20
    log(f"onnx: exported in {time.perf_counter() - t0:.1f} s ({size:.1f} MiB)")


def make_engines(model, tokenizer, session):
    """name -> f(list of texts) -> float32 [n, 384]; tokenization included."""

    def torch_embed(batch):
        enc = tokenizer(batch, **TOKENIZE, return_tensors="pt")
        with torch.inference_mode():
            return model(enc["input_ids"], enc["attention_mask"]).numpy()

    def ort_embed(batch):
        enc = tokenizer(batch, **TOKENIZE, return_tensors="np")
        feeds = {
            "input_ids": enc["input_ids"].astype(np.int64, copy=False),
            "attention_mask": enc["attention_mask"].astype(np.int64, copy=False),
        }
        return session.run(None, feeds)[0]

    return {"torch": torch_embed, "onnxruntime": ort_embed}


def cpu_seconds():
    t = os.times()
    return t.user + t.system


def measure(embed, set_texts, batch, budget):
    """(sentences/s, cores busy): benches/minilm.rs `in_process` — one warm-up call on the first
    `batch` texts, then whole passes over the set in chunks of `batch` until `budget` has run."""
    embed(set_texts[:batch])
    chunks = [set_texts[i : i + batch] for i in range(0, len(set_texts), batch)]
    cpu0, start = cpu_seconds(), time.perf_counter()
    done = 0
    while time.perf_counter() - start < budget:
        for chunk in chunks:
            embed(chunk)
            done += len(chunk)
    wall = time.perf_counter() - start
    return done / wall, (cpu_seconds() - cpu0) / wall


def cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one round (a smoke test)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per configuration (2)")
    parser.add_argument(
        "--record", action="store_true", help=f"also write {RECORD_PATH}"
    )
    args = parser.parse_args()
    if args.quick and args.record:
        parser.error("--quick is a smoke test: its numbers are not for benches/results")
    rounds = 1 if args.quick else max(1, args.rounds)
    budget = float(os.environ.get("BUDGET_S", "6"))

    if not (MODEL_DIR / "model.safetensors").is_file():
        sys.exit(f"MiniLM files are absent from {MODEL_DIR}: run scripts/fetch-minilm.sh")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(THREADS)
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)

    t0 = time.perf_counter()
    model_sha = sha256(MODEL_DIR / "model.safetensors")
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(MODEL_DIR / "tokenizer.json"))
    bert = BertModel.from_pretrained(
        str(MODEL_DIR), add_pooling_layer=False, local_files_only=True
    )
    model = Embedder(bert).eval()
    log(
        f"loaded in {time.perf_counter() - t0:.1f} s "
        f"(attention: {bert.config._attn_implementation})"
    )
    export_onnx(model, tokenizer, model_sha)

    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(
        str(ONNX_PATH), options, providers=["CPUExecutionProvider"]
    )
    engines = make_engines(model, tokenizer, session)

    sets = {"short": texts(64, 13), "long": texts(32, 120)}
    mean_tokens = {
        name: statistics.fmean(
            len(tokenizer(t, truncation=True, max_length=MAX_TOKENS)["input_ids"])
            for t in set_texts
        )
        for name, set_texts in sets.items()
    }

    # Correctness first: the two engines agree, and the reference for the Rust side.
    ref_texts = sets["short"][:20] + sets["long"][:20]
    ref_sets = ["short"] * 20 + ["long"] * 20
    by_engine = {
        name: np.concatenate([embed(ref_texts[:20]), embed(ref_texts[20:])])
        for name, embed in engines.items()
    }
    max_diff = float(np.abs(by_engine["torch"] - by_engine["onnxruntime"]).max())
    norms = np.linalg.norm(by_engine["torch"], axis=1)
    print(
        f"correctness: {len(ref_texts)} texts, max |torch - onnxruntime| = {max_diff:.2e} "
        f"(limit {TOLERANCE:g}), norms {norms.min():.6f}..{norms.max():.6f}"
    )
    assert max_diff < TOLERANCE, f"torch and onnxruntime differ by {max_diff}"
    assert np.allclose(norms, 1.0, atol=1e-5), "embeddings are not L2-normalised"
    reference = {
        "model": "all-MiniLM-L6-v2",
        "model_sha256": model_sha,
        "max_tokens": MAX_TOKENS,
        "pooling": "masked mean over tokens, then L2 normalisation",
        "source": "PyTorch eager (float32), batches of 20 padded to the longest",
        "max_abs_diff_torch_vs_onnxruntime": max_diff,
        "items": [
            {
                "set": s,
                "text": t,
                "tokens": len(
                    tokenizer(t, truncation=True, max_length=MAX_TOKENS)["input_ids"]
                ),
                "embedding": [float(x) for x in v],
            }
            for s, t, v in zip(ref_sets, ref_texts, by_engine["torch"])
        ],
    }
    (OUT_DIR / "reference.json").write_text(json.dumps(reference) + "\n")
    print(f"wrote {OUT_DIR / 'reference.json'}")

    # Throughput, rounds alternating torch, ort, torch, ort per configuration.
    results = {}
    print(
        f"\nbudget {budget:g} s per measurement, {rounds} round(s), {THREADS} threads, "
        f"tokenization included"
    )
    header = f"{'engine':12} {'set':6} {'tokens':>6} {'batch':>5} {'sentences/s':>12} {'cores':>6}  rounds"
    print(header)
    print("-" * len(header))
    for set_name, set_texts in sets.items():
        for batch in (1, 32):
            runs = {name: [] for name in engines}
            for _ in range(rounds):
                for name, embed in engines.items():
                    runs[name].append(measure(embed, set_texts, batch, budget))
            for name, rs in runs.items():
                rate = statistics.median(r for r, _ in rs)
                busy = statistics.median(c for _, c in rs)
                results.setdefault(name, {}).setdefault(set_name, {})[f"batch_{batch}"] = {
                    "sentences_per_s": rate,
                    "cores_busy": busy,
                    "rounds": [{"sentences_per_s": r, "cores_busy": c} for r, c in rs],
                }
                each = " ".join(f"{r:.1f}" for r, _ in rs)
                print(
                    f"{name:12} {set_name:6} {mean_tokens[set_name]:6.1f} {batch:5d} "
                    f"{rate:12.1f} {busy:6.2f}  [{each}]",
                    flush=True,
                )

    out = {
        "model": "all-MiniLM-L6-v2",
        "what": "sentences/s in-process on the CPU, tokenization included, "
        "same texts as benches/minilm.rs; median of rounds alternating torch/onnxruntime",
        "threads": THREADS,
        "budget_s": budget,
        "rounds": rounds,
        "quick": args.quick,
        "max_tokens": MAX_TOKENS,
        "short_mean_tokens": mean_tokens["short"],
        "long_mean_tokens": mean_tokens["long"],
        "max_abs_diff_torch_vs_onnxruntime": max_diff,
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "onnxruntime": ort.__version__,
            "numpy": np.__version__,
        },
        "torch_attention": bert.config._attn_implementation,
        "machine": {"cpu": cpu_model(), "cpus": os.cpu_count()},
        "engines": results,
    }
    text = json.dumps(out, indent=2) + "\n"
    (OUT_DIR / "anchors.json").write_text(text)
    print(f"\nwrote {OUT_DIR / 'anchors.json'}")
    if args.record:
        RECORD_PATH.write_text(text)
        print(f"wrote {RECORD_PATH}")


if __name__ == "__main__":
    main()
