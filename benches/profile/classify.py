"""Where a MiniLM pass's time goes, from `perf script` output of `benches/minilm_profile.sh`.

Each sample's stack is walked from the leaf up; the first frame that names a known kind of
work decides the sample's category. Model loading (before the measured loop) is left out.
Writes one JSON object: per category the share of all samples, of the calling thread's and of
the rayon pool's, and the samples' count.
"""

import collections
import json
import re
import sys

# Checked against the whole stack first: setup, not the passes being measured.
SETUP = re.compile(
    r"load_tokenizer|TextEmbedder<B>>?::load|sha256_of|ModuleMapper|Module<B>>::map|burn_store|"
    r"drop_in_place<burnserve_models::arch::bert::"
)
# Leaf first: the first frame matching one of these names the sample's work.
KINDS = [
    ("tokenization", re.compile(r"tokenizers::")),
    ("GEMM (linears and attention products)", re.compile(r"gemm")),
    ("softmax (attention kernel)", re.compile(r"exp_minus|softmax_row|attention_host")),
    ("softmax (burn-flex)", re.compile(r"softmax")),
    ("GELU", re.compile(r"gelu")),
    ("LayerNorm", re.compile(r"layer_norm")),
    ("layout copies (swap_dims/reshape/permute)", re.compile(r"to_contiguous|StridedIter|permute|copy_strided")),
    ("element-wise (bias, residual, scale, mask)", re.compile(r"ops::binary|scalar_op|add_inplace|run_broadcast|expand|repeat_dim|mask")),
    ("allocation and page faults", re.compile(r"FlexTensor::empty|page_fault|__memset|malloc|cfree|_int_free|alloc::alloc|mmap|munmap")),
    ("pool waiting and wake-ups", re.compile(r"rayon_core::sleep|sched_yield|futex|__schedule|finish_task_switch|wait_until|crossbeam_deque|Stealer")),
    ("embeddings and pooling", re.compile(r"Embedding|embed_padded|sum_dim|gather|select")),
]


def samples(path):
    header, frames = None, None
    with open(path, errors="replace") as lines:
        for line in lines:
            if not line.strip():
                if frames is not None:
                    yield header, frames
                header, frames = None, None
            elif not line[0].isspace():
                header, frames = line.split(), []
            elif frames is not None:
                parts = line.strip().split(" ", 1)
                if len(parts) == 2:
                    frames.append(re.sub(r"\+0x[0-9a-f]+ \(.*\)$", "", parts[1]))
        if frames is not None:
            yield header, frames


def kind(frames):
    for frame in frames:
        for name, pattern in KINDS:
            if pattern.search(frame):
                return name
    return "other"


def main(path):
    counts = collections.Counter()
    by_thread = {"calling thread": collections.Counter(), "rayon pool": collections.Counter()}
    main_tid = None
    for header, frames in samples(path):
        if main_tid is None:
            main_tid = header[1]  # the first sample is the process's main thread starting
        if SETUP.search(" ".join(frames)):
            continue
        work = kind(frames)
        counts[work] += 1
        by_thread["calling thread" if header[1] == main_tid else "rayon pool"][work] += 1
    total = sum(counts.values()) or 1
    report = {
        "samples": total,
        "share": {k: v / total for k, v in counts.most_common()},
        "by_thread": {
            thread: {"samples": sum(c.values()), "share": {k: v / total for k, v in c.most_common()}}
            for thread, c in by_thread.items()
        },
    }
    json.dump(report, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main(sys.argv[1])
