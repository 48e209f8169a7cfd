#!/usr/bin/env python3
"""Writes the ONNX test data the Rust ONNX interpreter (models/src/onnx/) is tested against.

Run it through scripts/install-onnx-testdata.sh, which puts onnx, onnxruntime and numpy (pinned)
in target/onnx-venv first. Everything lands in target/onnx-testdata/ and is deterministic (fixed
seeds); a stamp file (.stamp) records the script's version, its own sha256, the library versions
and the weights it read, and a later run with the same stamp does nothing. Otherwise the tree is
rebuilt from scratch in target/onnx-testdata.partial/ and then swapped in.

What it writes (each "case" directory holds model.onnx plus test_data_set_0/{input_K,output_K}.pb
in the ONNX backend-test format: onnx.numpy_helper tensors, serialised; outputs from onnxruntime,
cross-checked against onnx's pure-Python reference evaluator):

  backend/{pytorch-converted,pytorch-operator,simple}/  the onnx wheel's own backend test cases
  node/                        the ONNX operator-level conformance suite (the "node" tests runtimes
                               report coverage on), generated from the wheel's Python definitions
                               (onnx.backend.test.case.node.collect_testcases) in the same layout,
                               with the onnx package's expected outputs; node/manifest.json has
                               each case's op, op types, opset and tolerances (TestCase.rtol /
                               TestCase.atol) and the cases not written (sequence, optional or map
                               values have no TensorProto form) with the reason. Written by a
                               second process alongside the rest (`onnx_testdata.py --node DIR`),
                               or hard-linked from the current tree while node/.stamp (its own
                               inputs) holds; scripts/onnx_node_reference.py, run by hand, runs
                               the cases through onnxruntime into node/onnxruntime.json
  fashion-mlp/, fashion-cnn/   the repository's trained Fashion-MNIST models (models/repository/
                               fashion/{1,2}) as ONNX graphs; their test-set accuracy under
                               onnxruntime must match what model.toml says, which proves the
                               weight layout was read right
  cnn-zoo/                     a seeded random CNN touching grouped, dilated, SAME_UPPER and
                               asymmetrically padded Conv, BatchNormalization, pooling, Concat, ...
  transformer/                 a seeded random 2-layer BERT-like encoder with symbolic batch/seq
  minilm/                      all-MiniLM-L6-v2 (models/repository/minilm/1, from
                               scripts/fetch-minilm.sh) as a real BERT graph: input_ids,
                               attention_mask, token_type_ids -> last_hidden_state (before pooling);
                               tokenizer.json beside it, three texts tokenized by the `tokenizers`
                               package as the server does, and reference.json with their
                               sentence embeddings (masked mean pooling + L2 normalisation)
  external-ok/                 a small model whose initializers live in weights.bin beside it
  hostile/                     malformed or malicious models a loader must reject cleanly
  manifest.json                every model's inputs/outputs (names, dtypes, shapes), opset, node
                               count, and what each hostile file is
"""

import fcntl
import gzip
import hashlib
import importlib.metadata
import inspect
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tomllib
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import tokenizers
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator
from tokenizers import Tokenizer

# Bump when the output changes in a way the sha256 of this file would not show (it always does).
SCRIPT_VERSION = 4
# The same for node/ alone (node_stamp), which a rebuild reuses while its own stamp holds.
NODE_VERSION = 1

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "target" / "onnx-testdata"
FASHION = ROOT / "models" / "repository" / "fashion"
MINILM = ROOT / "models" / "repository" / "minilm" / "1"
MINILM_FILES = ("model.safetensors", "config.json", "tokenizer.json")
DATASET = Path("/usr/share/datasets/fashion-mnist")

FLOAT = TensorProto.FLOAT
INT64 = TensorProto.INT64


def log(message):
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------


class Graph:
    """A small graph builder: nodes get unique output names, initializers are numpy arrays."""

    def __init__(self):
        self.nodes = []
        self.initializers = []
        self.count = 0

    def const(self, name, array):
        self.initializers.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def op(self, op_type, inputs, outputs=1, name=None, domain=None, **attrs):
        """Adds a node; answers its output name, or a list of them when outputs > 1."""
        self.count += 1
        base = name or f"{op_type.lower()}_{self.count}"
        names = [base] if outputs == 1 else [f"{base}_{i}" for i in range(outputs)]
        self.nodes.append(
            helper.make_node(op_type, inputs, names, name=f"n{self.count}_{op_type}", domain=domain, **attrs)
        )
        return names[0] if outputs == 1 else names

    def model(self, name, inputs, outputs, opset, ir_version):
        graph = helper.make_graph(self.nodes, name, inputs, outputs, self.initializers)
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", opset)],
            ir_version=ir_version,
            producer_name="burnserve scripts/onnx_testdata.py",
        )
        return model


def value_info(name, elem_type, shape):
    return helper.make_tensor_value_info(name, elem_type, shape)


def session(path):
    """An onnxruntime session that evaluates the graph as written (no fusions), one thread."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def write_case(case_dir, model, feeds, *, save_model=True, reference_opset=None, rtol=1e-4, atol=1e-5):
    """Checks `model`, writes it (unless already written) and test_data_set_0 with onnxruntime's
    outputs for `feeds` (input name -> array, in graph input order). Answers the outputs.
    `reference_opset` runs the cross-check on a copy importing that default-domain opset instead
    (to step around a bug of onnx.reference at the model's own opset)."""
    case_dir.mkdir(parents=True, exist_ok=True)
    path = case_dir / "model.onnx"
    if save_model:
        onnx.checker.check_model(model, full_check=True)
        onnx.save_model(model, path)
    else:
        onnx.checker.check_model(str(path), full_check=True)
    sess = session(path)
    outputs = sess.run(None, feeds)
    # Cross-check onnxruntime against onnx's reference evaluator.
    checked = onnx.load(path)
    if reference_opset is not None:
        for opset in checked.opset_import:
            if opset.domain in ("", "ai.onnx"):
                opset.version = reference_opset
    reference = ReferenceEvaluator(checked).run(None, feeds)
    for o, r, info in zip(outputs, reference, sess.get_outputs()):
        if o.shape != r.shape or not np.allclose(o, r, rtol=rtol, atol=atol):
            raise SystemExit(
                f"{case_dir.name}: onnxruntime and onnx.reference disagree on {info.name}: "
                f"max |diff| {np.max(np.abs(o - r)) if o.shape == r.shape else 'shape'}"
            )
    data = case_dir / "test_data_set_0"
    data.mkdir(exist_ok=True)
    for i, (name, array) in enumerate(feeds.items()):
        (data / f"input_{i}.pb").write_bytes(numpy_helper.from_array(array, name).SerializeToString())
    for i, (array, info) in enumerate(zip(outputs, sess.get_outputs())):
        (data / f"output_{i}.pb").write_bytes(numpy_helper.from_array(array, info.name).SerializeToString())
    return outputs


def describe(model):
    """Inputs, outputs, opset and node count of a model, for the manifest and the summary."""

    def io(values):
        result = []
        for v in values:
            t = v.type.tensor_type
            dims = [d.dim_param if d.HasField("dim_param") else d.dim_value for d in t.shape.dim]
            result.append({"name": v.name, "dtype": TensorProto.DataType.Name(t.elem_type), "shape": dims})
        return result

    return {
        "ir_version": model.ir_version,
        "opset": {o.domain or "ai.onnx": o.version for o in model.opset_import},
        "nodes": len(model.graph.node),
        "op_types": sorted({n.op_type for n in model.graph.node}),
        "inputs": io(model.graph.input),
        "outputs": io(model.graph.output),
    }


# ---------------------------------------------------------------------------------------------
# Inputs: safetensors weights and Fashion-MNIST
# ---------------------------------------------------------------------------------------------


SAFETENSORS_DTYPES = {"F32": np.dtype("<f4"), "I64": np.dtype("<i8")}


def read_safetensors(path, dtypes=("F32",)):
    """name -> array (float32 for F32): 8-byte little-endian header length, JSON header, then
    the data. A tensor whose dtype is not in `dtypes` stops the script."""
    blob = path.read_bytes()
    (length,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + length])
    data = blob[8 + length :]
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if entry["dtype"] not in dtypes:
            raise SystemExit(f"{path}: {name} is {entry['dtype']}, expected one of {list(dtypes)}")
        start, end = entry["data_offsets"]
        dtype = SAFETENSORS_DTYPES[entry["dtype"]]
        array = np.frombuffer(data[start:end], dtype=dtype).reshape(entry["shape"])
        tensors[name] = array.astype(dtype.newbyteorder("="))
    return tensors


def read_idx(path, magic):
    with gzip.open(path, "rb") as f:
        blob = f.read()
    found, count = struct.unpack(">II", blob[:8])
    if found != magic:
        raise SystemExit(f"{path}: magic {found}, expected {magic}")
    if magic == 2051:
        rows, cols = struct.unpack(">II", blob[8:16])
        return np.frombuffer(blob[16:], dtype=np.uint8).reshape(count, rows, cols)
    return np.frombuffer(blob[8:], dtype=np.uint8).reshape(count)


def fashion_test_set():
    images = DATASET / "t10k-images-idx3-ubyte.gz"
    labels = DATASET / "t10k-labels-idx1-ubyte.gz"
    if not images.exists() or not labels.exists():
        raise SystemExit(f"Fashion-MNIST is missing from {DATASET}: run scripts/install-datasets.sh")
    x = read_idx(images, 2051).astype(np.float32) / 255.0
    y = read_idx(labels, 2049).astype(np.int64)
    return x, y


def stated_accuracy(version_dir):
    """The test accuracy (percent) model.toml's description states."""
    spec = tomllib.loads((version_dir / "model.toml").read_text())
    match = re.search(r"test accuracy ([0-9.]+)%", spec["description"])
    if not match:
        raise SystemExit(f"{version_dir}/model.toml: no 'test accuracy N%' in the description")
    return spec, float(match.group(1))


# ---------------------------------------------------------------------------------------------
# b. The repository's Fashion-MNIST models
# ---------------------------------------------------------------------------------------------


def fashion_io():
    return (
        [value_info("pixels", FLOAT, ["batch", 28, 28])],
        [value_info("probabilities", FLOAT, ["batch", 10])],
    )


def fashion_mlp(weights, hidden):
    """Flatten → (MatMul + Add → Relu) per hidden layer → MatMul + Add → Softmax.
    burn's Linear keeps weight as [in, out], which is MatMul's right operand as is."""
    g = Graph()
    x = g.op("Flatten", ["pixels"], axis=1)  # [batch, 784]
    layers = len(hidden) + 1
    for i in range(layers):
        w = g.const(f"layers.{i}.weight", weights[f"layers.{i}.weight"])
        b = g.const(f"layers.{i}.bias", weights[f"layers.{i}.bias"])
        x = g.op("Add", [g.op("MatMul", [x, w]), b])
        if i < layers - 1:
            x = g.op("Relu", [x])
    g.op("Softmax", [x], name="probabilities", axis=1)
    inputs, outputs = fashion_io()
    return g.model("fashion_mlp", inputs, outputs, opset=17, ir_version=8)


def fashion_cnn(weights):
    """NCHW: Unsqueeze to [batch,1,28,28] → Conv3x3 same → Relu → MaxPool 2/2 → Conv3x3 same →
    Relu → MaxPool 2/2 → Transpose to NHWC (burn's dense layer reads (h, w, c)) → Flatten →
    Gemm → Relu → Gemm → Softmax. burn's Conv2d weight is [out, in, kh, kw] like ONNX's, and both
    are cross-correlations."""
    g = Graph()
    axes = g.const("unsqueeze_axes", np.array([1], np.int64))
    x = g.op("Unsqueeze", ["pixels", axes])  # [batch, 1, 28, 28]
    for conv in ("conv1", "conv2"):
        w = g.const(f"{conv}.weight", weights[f"{conv}.weight"])
        b = g.const(f"{conv}.bias", weights[f"{conv}.bias"])
        x = g.op("Conv", [x, w, b], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
        x = g.op("Relu", [x])
        x = g.op("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
    x = g.op("Transpose", [x], perm=[0, 2, 3, 1])  # [batch, 7, 7, 32]
    x = g.op("Flatten", [x], axis=1)  # [batch, 1568] in (h, w, c) order
    for i, dense in enumerate(("dense", "classifier")):
        w = g.const(f"{dense}.weight", weights[f"{dense}.weight"])  # [in, out]
        b = g.const(f"{dense}.bias", weights[f"{dense}.bias"])
        x = g.op("Gemm", [x, w, b])
        if i == 0:
            x = g.op("Relu", [x])
    g.op("Softmax", [x], name="probabilities", axis=1)
    inputs, outputs = fashion_io()
    return g.model("fashion_cnn", inputs, outputs, opset=17, ir_version=8)


def write_fashion(out, report):
    images, labels = fashion_test_set()
    accuracies = {}
    for case, version in (("fashion-mlp", 1), ("fashion-cnn", 2)):
        version_dir = FASHION / str(version)
        spec, stated = stated_accuracy(version_dir)
        weights = read_safetensors(version_dir / spec["weights"])
        if spec["architecture"] == "mlp":
            model = fashion_mlp(weights, spec["params"]["hidden"])
        elif spec["architecture"] == "cnn":
            model = fashion_cnn(weights)
        else:
            raise SystemExit(f"{version_dir}: unexpected architecture {spec['architecture']}")
        case_dir = out / case
        write_case(case_dir, model, {"pixels": images[:8].copy()})
        sess = session(case_dir / "model.onnx")
        predicted = np.concatenate(
            [sess.run(None, {"pixels": images[i : i + 1000]})[0].argmax(axis=1) for i in range(0, len(images), 1000)]
        )
        accuracy = 100.0 * float(np.mean(predicted == labels))
        log(f"{case}: onnxruntime test accuracy {accuracy:.2f}% (model.toml says {stated:.2f}%)")
        # A wrong layout guess costs tens of points; float reordering may flip a few images.
        if abs(accuracy - stated) > 0.1:
            raise SystemExit(f"{case}: accuracy {accuracy:.2f}% is not the stated {stated:.2f}%")
        accuracies[case] = {"onnxruntime": round(accuracy, 2), "model_toml": stated}
        report[case] = describe(model) | {"accuracy_percent": round(accuracy, 2), "stated_accuracy_percent": stated}
    return accuracies


# ---------------------------------------------------------------------------------------------
# c. cnn-zoo: a random CNN touching many Conv/pooling variants
# ---------------------------------------------------------------------------------------------


def cnn_zoo():
    rng = np.random.default_rng(1301)
    g = Graph()

    def he(shape):
        fan_in = int(np.prod(shape[1:]))
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

    def vec(n, scale=0.1, offset=0.0):
        return (offset + rng.standard_normal(n) * scale).astype(np.float32)

    def batchnorm(x, name, c):
        scale = g.const(f"{name}.scale", vec(c, 0.1, 1.0))
        bias = g.const(f"{name}.bias", vec(c))
        mean = g.const(f"{name}.mean", vec(c))
        var = g.const(f"{name}.var", (0.5 + rng.random(c)).astype(np.float32))
        return g.op("BatchNormalization", [x, scale, bias, mean, var], epsilon=1e-3)

    # [b,3,32,32] → Conv 3→16, explicit asymmetric pads (top 1, left 0, bottom 1, right 2)
    c1 = g.op("Conv", ["x", g.const("c1.w", he([16, 3, 3, 3])), g.const("c1.b", vec(16))],
              kernel_shape=[3, 3], pads=[1, 0, 1, 2])
    r1 = g.op("Relu", [batchnorm(c1, "bn1", 16)])
    # Grouped conv, 4 groups of 4 channels
    c2 = g.op("Conv", [r1, g.const("c2.w", he([16, 4, 3, 3])), g.const("c2.b", vec(16))],
              kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=4)
    l2 = g.op("LeakyRelu", [c2], alpha=0.1)
    # Dilated conv, dilation 2 (pads 2 keep 32x32)
    c3 = g.op("Conv", [l2, g.const("c3.w", he([16, 16, 3, 3])), g.const("c3.b", vec(16))],
              kernel_shape=[3, 3], pads=[2, 2, 2, 2], dilations=[2, 2])
    # Clip with min and max given as inputs (opset 11+): ReLU6
    k3 = g.op("Clip", [c3, g.const("clip.min", np.array(0.0, np.float32)), g.const("clip.max", np.array(6.0, np.float32))])
    a3 = g.op("Add", [k3, r1])  # residual
    # Depthwise conv without bias, then Clip with only max (min omitted as "")
    dw = g.op("Conv", [a3, g.const("dw.w", he([16, 1, 3, 3]))], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=16)
    k4 = g.op("Clip", [dw, "", g.const("clip4.max", np.array(4.0, np.float32))])
    p1 = g.op("MaxPool", [k4], kernel_shape=[2, 2], strides=[2, 2])  # [b,16,16,16]
    # Branch A: strided conv with auto_pad SAME_UPPER (16 → 8: pads 0 before, 1 after)
    ca = g.op("Conv", [p1, g.const("ca.w", he([24, 16, 3, 3])), g.const("ca.b", vec(24))],
              kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER")
    ra = g.op("Relu", [ca])  # [b,24,8,8]
    # Branch B: average pool that ignores the padding
    pb = g.op("AveragePool", [p1], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=0)
    cat = g.op("Concat", [ra, pb], axis=1)  # [b,40,8,8]
    ab = g.op("Add", [cat, g.const("channel_bias", vec(40).reshape(40, 1, 1))])  # [40,1,1] broadcast
    lr = g.op("LeakyRelu", [ab])  # default alpha 0.01
    c5 = g.op("Conv", [lr, g.const("c5.w", he([32, 40, 1, 1]))], kernel_shape=[1, 1])  # pointwise, no bias
    r5 = g.op("Relu", [batchnorm(c5, "bn5", 32)])
    p5 = g.op("MaxPool", [r5], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])  # [b,32,4,4]
    gap = g.op("GlobalAveragePool", [p5])  # [b,32,1,1]
    gap2 = g.op("GlobalAveragePool", [ab])  # [b,40,1,1]
    cat2 = g.op("Concat", [gap, gap2], axis=1)  # [b,72,1,1]
    flat = g.op("Flatten", [cat2], axis=1)  # [b,72]
    logits = g.op("Gemm", [flat, g.const("fc.w", he([10, 72])), g.const("fc.b", vec(10))], transB=1)
    g.op("Softmax", [logits], name="probabilities", axis=-1)
    return g.model(
        "cnn_zoo",
        [value_info("x", FLOAT, ["batch", 3, 32, 32])],
        [value_info("probabilities", FLOAT, ["batch", 10])],
        opset=13,
        ir_version=7,
    )


# ---------------------------------------------------------------------------------------------
# d. transformer: a random 2-layer BERT-like encoder
# ---------------------------------------------------------------------------------------------

VOCAB, MAX_POSITIONS, HIDDEN, HEADS, FFN, LAYERS = 50, 16, 32, 4, 64, 2


def transformer():
    rng = np.random.default_rng(1701)
    head_dim = HIDDEN // HEADS
    g = Graph()

    def weight(rows, cols):
        return (rng.standard_normal((rows, cols)) / np.sqrt(rows)).astype(np.float32)

    def vec(n, scale=0.05, offset=0.0):
        return (offset + rng.standard_normal(n) * scale).astype(np.float32)

    def scalar(name, value, dtype):
        return g.const(name, np.array(value, dtype))

    def layer_norm(x, name):
        scale = g.const(f"{name}.gamma", vec(HIDDEN, 0.1, 1.0))
        bias = g.const(f"{name}.beta", vec(HIDDEN))
        return g.op("LayerNormalization", [x, scale, bias], axis=-1, epsilon=1e-12)

    def dense(x, name, rows, cols):
        w = g.const(f"{name}.weight", weight(rows, cols))
        b = g.const(f"{name}.bias", vec(cols))
        return g.op("Add", [g.op("MatMul", [x, w]), b])

    # Embeddings: word table gathered by ids, position table gathered by Range(0, seq).
    words = g.op("Gather", [g.const("embeddings.word", rng.standard_normal((VOCAB, HIDDEN)).astype(np.float32)), "input_ids"])
    ids_shape = g.op("Shape", ["input_ids"])  # [2] = (batch, seq)
    seq = g.op("Gather", [ids_shape, scalar("one_i64", 1, np.int64)], axis=0)  # scalar seq
    positions = g.op("Range", [scalar("zero_i64", 0, np.int64), seq, "one_i64"])  # [seq]
    pos_table = g.const("embeddings.position", (rng.standard_normal((MAX_POSITIONS, HIDDEN)) * 0.5).astype(np.float32))
    pos = g.op("Gather", [pos_table, positions], axis=0)  # [seq, hidden]
    x = layer_norm(g.op("Add", [words, pos]), "embeddings.norm")  # [b, s, hidden]

    # Additive attention mask: (1 - mask) * -10000, as [b, 1, 1, s].
    mask = g.op("Cast", ["attention_mask"], to=FLOAT)
    inverted = g.op("Sub", [scalar("one_f32", 1.0, np.float32), mask])
    additive = g.op("Mul", [inverted, scalar("mask_fill", -10000.0, np.float32)])
    additive = g.op("Unsqueeze", [additive, g.const("mask_axes", np.array([1, 2], np.int64))])

    # Shape [b, s, heads, head_dim] for the head split, from the runtime shape of x.
    x_shape = g.op("Shape", [x])  # [3]
    batch = g.op("Gather", [x_shape, "zero_i64"], axis=0)
    seq_len = g.op("Slice", [x_shape, g.const("slice_start", np.array([1], np.int64)), g.const("slice_end", np.array([2], np.int64))])
    axis0 = g.const("axis0", np.array([0], np.int64))
    heads_shape = g.op("Concat", [g.op("Unsqueeze", [batch, axis0]), seq_len,
                                  g.const("heads_dims", np.array([HEADS, head_dim], np.int64))], axis=0)
    merge_shape = g.const("merge_shape", np.array([0, 0, HIDDEN], np.int64))  # 0 copies the dim
    sqrt_dh = scalar("sqrt_head_dim", np.sqrt(head_dim), np.float32)
    sqrt2 = scalar("sqrt2", np.sqrt(2.0), np.float32)
    half = scalar("half", 0.5, np.float32)

    for layer in range(LAYERS):
        p = f"layer{layer}"
        q = g.op("Transpose", [g.op("Reshape", [dense(x, f"{p}.query", HIDDEN, HIDDEN), heads_shape])], perm=[0, 2, 1, 3])
        k = g.op("Transpose", [g.op("Reshape", [dense(x, f"{p}.key", HIDDEN, HIDDEN), heads_shape])], perm=[0, 2, 3, 1])
        v = g.op("Transpose", [g.op("Reshape", [dense(x, f"{p}.value", HIDDEN, HIDDEN), heads_shape])], perm=[0, 2, 1, 3])
        scores = g.op("Div", [g.op("MatMul", [q, k]), sqrt_dh])  # [b, heads, s, s]
        probs = g.op("Softmax", [g.op("Add", [scores, additive])], axis=-1)
        context = g.op("Transpose", [g.op("MatMul", [probs, v])], perm=[0, 2, 1, 3])  # [b, s, heads, dh]
        context = g.op("Reshape", [context, merge_shape])  # [b, s, hidden]
        x = layer_norm(g.op("Add", [x, dense(context, f"{p}.attention_out", HIDDEN, HIDDEN)]), f"{p}.attention_norm")
        h = dense(x, f"{p}.intermediate", HIDDEN, FFN)
        # Exact GELU: 0.5 * h * (1 + erf(h / sqrt 2))
        gelu = g.op("Mul", [g.op("Mul", [h, half]), g.op("Add", [g.op("Erf", [g.op("Div", [h, sqrt2])]), "one_f32"])])
        x = layer_norm(g.op("Add", [x, dense(gelu, f"{p}.output", FFN, HIDDEN)]), f"{p}.output_norm")

    g.op("ReduceMean", [x], name="embedding", axes=[1], keepdims=0)
    return g.model(
        "transformer",
        [value_info("input_ids", INT64, ["batch", "seq"]), value_info("attention_mask", INT64, ["batch", "seq"])],
        [value_info("embedding", FLOAT, ["batch", HIDDEN])],
        opset=17,
        ir_version=8,
    )


# ---------------------------------------------------------------------------------------------
# g. minilm: all-MiniLM-L6-v2 from the repository's safetensors as a BERT graph
# ---------------------------------------------------------------------------------------------

MINILM_TEXTS = [
    "A man is eating food.",
    "A man is riding a horse on a beach at sunset, slowly.",
    "burnserve serves ONNX graphs on burn.",
]
MINILM_MAX_TOKENS = 256  # sentence_bert_config.json's max_seq_length; model.toml's max_tokens
# The additive attention mask: (1 - mask) * MINILM_MASK_FILL, as HF BERT did before it switched
# to finfo(float32).min. Either way exp() of a masked score is exactly 0 in float32, so real
# tokens' outputs do not depend on the choice; -10000 keeps every value finite.
MINILM_MASK_FILL = -10000.0


def minilm_config():
    config = json.loads((MINILM / "config.json").read_text())
    expected = {
        "model_type": "bert", "hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12,
        "intermediate_size": 1536, "hidden_act": "gelu", "layer_norm_eps": 1e-12,
        "max_position_embeddings": 512, "type_vocab_size": 2, "vocab_size": 30522,
        "position_embedding_type": "absolute",
    }
    for key, value in expected.items():
        if config.get(key) != value:
            raise SystemExit(f"{MINILM}/config.json: {key} is {config.get(key)!r}, expected {value!r}")
    return config


def minilm(weights, config):
    """HF BertModel's forward (eval mode, absolute positions) up to last_hidden_state:
    embeddings = LayerNorm(word[input_ids] + token_type[token_type_ids] + position[0..seq]);
    per layer, self-attention (12 heads of 32, scores / sqrt(32) + (1 - mask) * -10000, softmax)
    → dense + residual + LayerNorm → dense + exact GELU → dense + residual + LayerNorm.
    The safetensors Linear weights are [out, in] (torch); MatMul takes them transposed."""
    hidden = config["hidden_size"]
    heads = config["num_attention_heads"]
    head_dim = hidden // heads
    eps = config["layer_norm_eps"]
    g = Graph()

    def tensor(name):
        if name not in weights:
            raise SystemExit(f"{MINILM}/model.safetensors: no tensor {name}")
        return weights[name]

    def scalar(name, value, dtype):
        return g.const(name, np.array(value, dtype))

    def layer_norm(x, prefix, name=None):
        scale = g.const(f"{prefix}.weight", tensor(f"{prefix}.weight"))
        bias = g.const(f"{prefix}.bias", tensor(f"{prefix}.bias"))
        return g.op("LayerNormalization", [x, scale, bias], name=name, axis=-1, epsilon=eps)

    def dense(x, prefix):
        w = g.const(f"{prefix}.weight", np.ascontiguousarray(tensor(f"{prefix}.weight").T))  # [in, out]
        b = g.const(f"{prefix}.bias", tensor(f"{prefix}.bias"))
        return g.op("Add", [g.op("MatMul", [x, w]), b])

    # Embeddings. HF adds word + token type first, then positions.
    word_table = g.const("embeddings.word_embeddings.weight", tensor("embeddings.word_embeddings.weight"))
    type_table = g.const("embeddings.token_type_embeddings.weight", tensor("embeddings.token_type_embeddings.weight"))
    pos_table = g.const("embeddings.position_embeddings.weight", tensor("embeddings.position_embeddings.weight"))
    words = g.op("Gather", [word_table, "input_ids"], axis=0)  # [b, s, hidden]
    types = g.op("Gather", [type_table, "token_type_ids"], axis=0)  # [b, s, hidden]
    ids_shape = g.op("Shape", ["input_ids"])  # [2] = (batch, seq)
    zero = scalar("zero_i64", 0, np.int64)
    one = scalar("one_i64", 1, np.int64)
    batch = g.op("Gather", [ids_shape, zero], axis=0)  # scalar batch
    seq = g.op("Gather", [ids_shape, one], axis=0)  # scalar seq
    positions = g.op("Range", [zero, seq, one])  # [seq] = 0..seq
    pos = g.op("Gather", [pos_table, positions], axis=0)  # [seq, hidden]
    x = g.op("Add", [g.op("Add", [words, types]), pos])
    x = layer_norm(x, "embeddings.LayerNorm")  # [b, s, hidden]

    # Additive attention mask, [b, 1, 1, s].
    mask = g.op("Cast", ["attention_mask"], to=FLOAT)
    inverted = g.op("Sub", [scalar("one_f32", 1.0, np.float32), mask])
    additive = g.op("Mul", [inverted, scalar("mask_fill", MINILM_MASK_FILL, np.float32)])
    additive = g.op("Unsqueeze", [additive, g.const("mask_axes", np.array([1, 2], np.int64))])

    # Head split [b, s, heads, head_dim] and merge [b, s, hidden], batch and seq from the input's shape.
    axis0 = g.const("axis0", np.array([0], np.int64))
    batch_1d = g.op("Unsqueeze", [batch, axis0])
    seq_1d = g.op("Unsqueeze", [seq, axis0])
    heads_shape = g.op("Concat", [batch_1d, seq_1d, g.const("heads_dims", np.array([heads, head_dim], np.int64))], axis=0)
    merge_shape = g.op("Concat", [batch_1d, seq_1d, g.const("hidden_dim", np.array([hidden], np.int64))], axis=0)
    inv_sqrt_dh = scalar("inv_sqrt_head_dim", 1.0 / np.sqrt(head_dim), np.float32)
    sqrt2 = scalar("sqrt2", np.sqrt(2.0), np.float32)
    half = scalar("half", 0.5, np.float32)

    layers = config["num_hidden_layers"]
    for layer in range(layers):
        p = f"encoder.layer.{layer}"

        def split(name):
            return g.op("Transpose", [g.op("Reshape", [dense(x, f"{p}.attention.self.{name}"), heads_shape])],
                        perm=[0, 2, 1, 3])  # [b, heads, s, head_dim]

        q, k, v = split("query"), split("key"), split("value")
        k_t = g.op("Transpose", [k], perm=[0, 1, 3, 2])  # [b, heads, head_dim, s]
        scores = g.op("Mul", [g.op("MatMul", [q, k_t]), inv_sqrt_dh])  # [b, heads, s, s]
        probs = g.op("Softmax", [g.op("Add", [scores, additive])], axis=-1)
        context = g.op("Transpose", [g.op("MatMul", [probs, v])], perm=[0, 2, 1, 3])  # [b, s, heads, dh]
        context = g.op("Reshape", [context, merge_shape])  # [b, s, hidden]
        attended = dense(context, f"{p}.attention.output.dense")
        x = layer_norm(g.op("Add", [attended, x]), f"{p}.attention.output.LayerNorm")
        h = dense(x, f"{p}.intermediate.dense")
        # Exact GELU: 0.5 * h * (1 + erf(h / sqrt 2))
        erf = g.op("Erf", [g.op("Div", [h, sqrt2])])
        gelu = g.op("Mul", [g.op("Mul", [h, half]), g.op("Add", [erf, "one_f32"])])
        out = dense(gelu, f"{p}.output.dense")
        last = layer == layers - 1
        x = layer_norm(g.op("Add", [out, x]), f"{p}.output.LayerNorm", name="last_hidden_state" if last else None)

    return g.model(
        "all_minilm_l6_v2",
        [value_info(name, INT64, ["batch", "seq"]) for name in ("input_ids", "attention_mask", "token_type_ids")],
        [value_info("last_hidden_state", FLOAT, ["batch", "seq", hidden])],
        opset=17,
        ir_version=8,
    )


def minilm_inputs(tokenizer_path):
    """Tokenizes MINILM_TEXTS as the server does (no padding, truncation at 256), then pads the
    batch to its longest text: ids 0, attention_mask 1/0, token_type_ids 0."""
    tokenizer = Tokenizer.from_file(str(tokenizer_path))
    tokenizer.no_padding()  # the file asks for Fixed(128) padding
    tokenizer.enable_truncation(MINILM_MAX_TOKENS)  # the file says 128
    encodings = [tokenizer.encode(text) for text in MINILM_TEXTS]
    longest = max(len(e.ids) for e in encodings)
    ids = np.zeros((len(encodings), longest), np.int64)
    mask = np.zeros((len(encodings), longest), np.int64)
    for row, encoding in enumerate(encodings):
        ids[row, : len(encoding.ids)] = encoding.ids
        mask[row, : len(encoding.ids)] = 1
        if any(encoding.type_ids) or any(m != 1 for m in encoding.attention_mask):
            raise SystemExit(f"minilm: unexpected type ids or mask for {MINILM_TEXTS[row]!r}")
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}, encodings


def sentence_embeddings(last_hidden_state, attention_mask):
    """sentence-transformers' recipe: mean over the tokens the mask keeps, then L2 normalisation."""
    h = last_hidden_state.astype(np.float64)
    m = attention_mask.astype(np.float64)[:, :, None]
    pooled = (h * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
    return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


def check_with_sentence_transformers(embeddings):
    """When sentence-transformers is importable (it is not in target/onnx-venv: it pulls torch),
    compare with its all-MiniLM-L6-v2 loaded from the repository's files; otherwise skip."""
    try:
        from sentence_transformers import SentenceTransformer, models
    except ImportError:
        log("minilm: sentence-transformers is not installed: its cross-check is skipped")
        return None
    encoder = models.Transformer(str(MINILM), max_seq_length=MINILM_MAX_TOKENS)
    pooling = models.Pooling(encoder.get_word_embedding_dimension(), pooling_mode="mean")
    st = SentenceTransformer(modules=[encoder, pooling, models.Normalize()], device="cpu")
    theirs = st.encode(MINILM_TEXTS, convert_to_numpy=True)
    diff = float(np.max(np.abs(theirs - embeddings)))
    if diff > 1e-4:
        raise SystemExit(f"minilm: sentence-transformers' embeddings differ by {diff:.2e}")
    log(f"minilm: sentence-transformers agrees within {diff:.2e}")
    return diff


def write_minilm(out, report):
    missing = [f for f in MINILM_FILES if not (MINILM / f).is_file()]
    if missing:
        raise SystemExit(f"minilm: {', '.join(missing)} missing from {MINILM}: run scripts/fetch-minilm.sh")
    config = minilm_config()
    weights = read_safetensors(MINILM / "model.safetensors", dtypes=("F32", "I64"))
    model = minilm(weights, config)
    case_dir = out / "minilm"
    case_dir.mkdir(parents=True)
    shutil.copyfile(MINILM / "tokenizer.json", case_dir / "tokenizer.json")
    feeds, encodings = minilm_inputs(case_dir / "tokenizer.json")
    # onnx.reference (numpy float32) stays within ~4e-6 of onnxruntime here; an independent
    # float64 numpy BERT forward from the safetensors agreed within ~3e-6 when this was written.
    (last_hidden_state,) = write_case(case_dir, model, feeds)
    embeddings = sentence_embeddings(last_hidden_state, feeds["attention_mask"])
    cosine = embeddings @ embeddings.T
    log(f"minilm: {len(model.graph.node)} nodes; tokens per text {[len(e.ids) for e in encodings]}; "
        f"cosines {cosine[0, 1]:.4f} (texts 0,1) {cosine[0, 2]:.4f} (0,2) {cosine[1, 2]:.4f} (1,2)")
    # Two "A man is ..." sentences are related but not paraphrases: all-MiniLM-L6-v2 puts such
    # pairs well inside (0.1, 0.8). A broken graph (wrong transposes, mask, or layout) tends to
    # collapse everything to cosines near 1 or scatter them near 0.
    if not 0.1 < cosine[0, 1] < 0.8:
        raise SystemExit(f"minilm: cosine of the two English sentences is {cosine[0, 1]:.4f}, not in (0.1, 0.8)")
    st_diff = check_with_sentence_transformers(embeddings)
    reference = {"texts": MINILM_TEXTS, "embeddings": embeddings.astype(np.float32).tolist()}
    (case_dir / "reference.json").write_text(json.dumps(reference) + "\n")
    report["minilm"] = describe(model) | {
        "texts": MINILM_TEXTS,
        "tokens": [len(e.ids) for e in encodings],
        "mask_fill": MINILM_MASK_FILL,
        "cosine_0_1": round(float(cosine[0, 1]), 6),
        "sentence_transformers_max_diff": st_diff,
        "tokenizers": tokenizers.__version__,
    }
    return embeddings


# ---------------------------------------------------------------------------------------------
# f. external-ok: initializers as external data
# ---------------------------------------------------------------------------------------------


def write_external_ok(out, report):
    rng = np.random.default_rng(4242)
    g = Graph()
    w = g.const("w", rng.standard_normal((4, 3)).astype(np.float32))
    b = g.const("b", rng.standard_normal(3).astype(np.float32))
    g.op("Add", [g.op("MatMul", ["x", w]), b], name="y")
    model = g.model("external_ok", [value_info("x", FLOAT, ["batch", 4])], [value_info("y", FLOAT, ["batch", 3])],
                    opset=17, ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    case_dir = out / "external-ok"
    case_dir.mkdir(parents=True)
    onnx.save_model(model, case_dir / "model.onnx", save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.bin", size_threshold=0)
    write_case(case_dir, model, {"x": rng.standard_normal((2, 4)).astype(np.float32)}, save_model=False)
    stored = onnx.load(case_dir / "model.onnx", load_external_data=False)
    external = [t.name for t in stored.graph.initializer if t.data_location == TensorProto.EXTERNAL]
    if sorted(external) != ["b", "w"]:
        raise SystemExit(f"external-ok: expected both initializers external, got {external}")
    report["external-ok"] = describe(stored) | {
        "external_data": {t.name: {e.key: e.value for e in t.external_data} for t in stored.graph.initializer}
    }


# ---------------------------------------------------------------------------------------------
# e. hostile: models a loader must refuse (written as raw protobuf; never passed to the checker)
# ---------------------------------------------------------------------------------------------


def tiny_model(nodes, initializers=(), x_shape=(1, 4), opsets=(("", 17),), inputs=None, outputs=None):
    graph = helper.make_graph(
        nodes,
        "hostile",
        inputs if inputs is not None else [value_info("x", FLOAT, list(x_shape))],
        outputs if outputs is not None else [value_info("y", FLOAT, list(x_shape))],
        list(initializers),
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets], ir_version=8)


def external_tensor(name, dims, location, length, offset=0):
    t = TensorProto(name=name, data_type=FLOAT, dims=list(dims), data_location=TensorProto.EXTERNAL)
    for key, value in (("location", location), ("offset", str(offset)), ("length", str(length))):
        t.external_data.add(key=key, value=value)
    return t


def write_hostile(out, truncate_source):
    d = out / "hostile"
    d.mkdir(parents=True)
    notes = {}

    def save(name, model_or_bytes, note):
        blob = model_or_bytes if isinstance(model_or_bytes, bytes) else model_or_bytes.SerializeToString()
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        (d / name).write_bytes(blob)
        notes[name] = note

    def must_not_parse(name):
        try:
            onnx.ModelProto().ParseFromString((d / name).read_bytes())
        except Exception:
            return
        raise SystemExit(f"hostile/{name}: protobuf parsed it; it was meant not to parse")

    source = truncate_source.read_bytes()
    save("truncated.onnx", source[: len(source) // 2],
         f"the first {len(source) // 2} of {len(source)} bytes of cnn-zoo/model.onnx: protobuf ends mid-field")
    must_not_parse("truncated.onnx")

    save("unknown-op.onnx", tiny_model([helper.make_node("FooBar", ["x"], ["y"])]),
         "node of op type FooBar in the default domain")

    save("custom-domain.onnx",
         tiny_model([helper.make_node("Custom", ["x"], ["y"], domain="com.example")],
                    opsets=(("", 17), ("com.example", 1))),
         "node Custom in domain com.example (imported at version 1)")

    lying = TensorProto(name="w", data_type=FLOAT, dims=[1000, 1000], raw_data=bytes(range(16)))
    save("lying-initializer.onnx",
         tiny_model([helper.make_node("Add", ["x", "w"], ["y"])], [lying], x_shape=(1000, 1000)),
         "initializer w: dims [1000,1000] FLOAT (4,000,000 bytes) but raw_data holds 16 bytes")

    save("cyclic.onnx",
         tiny_model([helper.make_node("Add", ["x", "b"], ["a"]), helper.make_node("Add", ["a", "x"], ["b"])],
                    outputs=[value_info("a", FLOAT, [1, 4])]),
         "Add(x, b) -> a and Add(a, x) -> b: a cycle, no topological order")

    chain = []
    previous = "x"
    for i in range(10_000):
        current = "y" if i == 9_999 else f"r{i}"
        chain.append(helper.make_node("Relu", [previous], [current]))
        previous = current
    save("deep-chain.onnx", tiny_model(chain),
         "10,000 Relu nodes in a chain, x [1,4] -> y [1,4] (valid: y = relu(x)); breaks recursive graph walks")

    wide = [helper.make_node("Relu", ["x"], ["y"])]
    wide += [helper.make_node("Relu", ["x"], [f"unused{i}"]) for i in range(100_000)]
    save("too-many-nodes.onnx", tiny_model(wide),
         "100,001 Relu nodes (one output used): over the 100,000 nodes burnserve plans")

    save("external-missing.onnx",
         tiny_model([helper.make_node("Add", ["x", "w"], ["y"])], [external_tensor("w", [1, 4], "weights.bin", 16)]),
         "initializer w [1,4] FLOAT is EXTERNAL in weights.bin (offset 0, length 16), which does not exist")

    save("external-truncated/model.onnx",
         tiny_model([helper.make_node("Add", ["x", "w"], ["y"])], [external_tensor("w", [4, 4], "weights.bin", 64)],
                    x_shape=(4, 4)),
         "initializer w [4,4] FLOAT is EXTERNAL in weights.bin (offset 0, length 64); the file holds 20 bytes")
    (d / "external-truncated" / "weights.bin").write_bytes(np.arange(5, dtype="<f4").tobytes())

    save("external-escape.onnx",
         tiny_model([helper.make_node("Add", ["x", "w"], ["y"])],
                    [external_tensor("w", [1, 4], "../../../../etc/passwd", 16)]),
         "initializer w [1,4] FLOAT is EXTERNAL at ../../../../etc/passwd: a path outside the model's directory")

    save("opset-too-new.onnx", tiny_model([helper.make_node("Relu", ["x"], ["y"])], opsets=(("", 99),)),
         "Relu model importing the default domain at opset 99")

    save("not-onnx.onnx", np.random.default_rng(99).bytes(4096), "4096 random bytes (seed 99)")
    must_not_parse("not-onnx.onnx")

    (d / "README.json").write_text(json.dumps(notes, indent=2) + "\n")
    return notes


# ---------------------------------------------------------------------------------------------
# h. node: the ONNX operator-level conformance suite
# ---------------------------------------------------------------------------------------------


def qualified(op_type, domain):
    return op_type if domain in ("", "ai.onnx") else f"{domain}:{op_type}"


def graph_op_types(graph):
    """Every op type in `graph` and in its subgraphs (If/Loop/Scan bodies), domain-qualified."""
    found = set()
    for node in graph.node:
        found.add(qualified(node.op_type, node.domain))
        for attr in node.attribute:
            for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
                found |= graph_op_types(sub)
    return found


VALUE_KINDS = {"sequence_type": "a sequence", "optional_type": "an optional", "map_type": "a map",
               "sparse_tensor_type": "a sparse tensor"}


def node_tensor(value, value_info):
    """`value` (a data-set entry) as a TensorProto named after `value_info`, or a reason why not."""
    kind = value_info.type.WhichOneof("value")
    if kind != "tensor_type":
        return None, VALUE_KINDS.get(kind, f"of type {kind}")
    if isinstance(value, TensorProto):
        tensor = TensorProto()
        tensor.CopyFrom(value)
        tensor.name = value_info.name
    elif isinstance(value, (np.ndarray, np.generic)):
        tensor = numpy_helper.from_array(np.asarray(value), value_info.name)
    else:
        return None, f"a {type(value).__name__} value"
    want = value_info.type.tensor_type.elem_type
    if want and tensor.data_type != want:
        return None, (f"{TensorProto.DataType.Name(tensor.data_type)} data for a "
                      f"{TensorProto.DataType.Name(want)} tensor")
    return tensor, None


def write_node(out):
    """Writes every case of onnx.backend.test.case.node.collect_testcases(None) to out/<name>/ as
    model.onnx + test_data_set_N/{input_K,output_K}.pb (the layout of onnx's backend/test/data/
    node in its source tree) and out/manifest.json. A case with a graph input or output that is
    not a tensor (sequence, optional, map) is not written: it is listed under "skipped"."""
    from onnx.backend.test.case.node import collect_testcases

    # The definitions draw their data from numpy's global RNG, module by module in sorted order.
    np.random.seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the Cast, Reduce* ... cases overflow on purpose
        cases = sorted(collect_testcases(None), key=lambda c: c.name)
    if len({c.name for c in cases}) != len(cases):
        raise SystemExit("node: collect_testcases returned duplicate names")
    out.mkdir(parents=True)
    # The op a case tests: its (first) node's; an "_expanded" case (the op's function body)
    # tests its base case's op.
    tested = {c.name: qualified(c.model.graph.node[0].op_type, c.model.graph.node[0].domain) for c in cases}
    written, skipped, reasons = {}, [], {}
    for case in cases:
        model = case.model
        op = tested.get(re.sub(r"_expanded(_ver\d+)?$", "", case.name), tested[case.name])
        sets, why, kind = [], None, None
        for inputs, outputs in case.data_sets:
            graph_io = [("input", model.graph.input, inputs), ("output", model.graph.output, outputs)]
            tensors = {}
            for side, infos, values in graph_io:
                if len(values) != len(infos):
                    why = kind = f"{len(values)} {side} values for {len(infos)} graph {side}s"
                    break
                tensors[side] = []
                for info, value in zip(infos, values):
                    tensor, problem = node_tensor(value, info)
                    if problem:
                        why, kind = f"{side} {info.name!r} is {problem}", f"{side} is {problem}"
                        break
                    tensors[side].append(tensor)
                if why:
                    break
            if why:
                break
            sets.append(tensors)
        if why:
            reasons[kind] = reasons.get(kind, 0) + 1
            skipped.append({"name": case.name, "op": op, "reason": why})
            continue
        case_dir = out / case.name
        case_dir.mkdir()
        (case_dir / "model.onnx").write_bytes(model.SerializeToString())
        for n, tensors in enumerate(sets):
            data = case_dir / f"test_data_set_{n}"
            data.mkdir()
            for side in ("input", "output"):
                for k, tensor in enumerate(tensors[side]):
                    (data / f"{side}_{k}.pb").write_bytes(tensor.SerializeToString())
        written[case.name] = {
            "op": op,
            "op_types": sorted(graph_op_types(model.graph)),
            "opset": {o.domain or "ai.onnx": o.version for o in model.opset_import},
            "ir_version": model.ir_version,
            "rtol": case.rtol,
            "atol": case.atol,
            "data_sets": len(sets),
            "inputs": [i.name for i in model.graph.input],
            "outputs": [o.name for o in model.graph.output],
        }
    manifest = {
        "source": f"onnx {onnx.__version__} (ml_dtypes {importlib.metadata.version('ml_dtypes')}): "
                  "onnx.backend.test.case.node.collect_testcases(None), numpy.random.seed(0) first",
        "tolerance": "onnx.backend.test.runner: per output, equal shape and dtype, then "
                     "numpy.testing.assert_allclose(actual, expected, rtol=TestCase.rtol, "
                     "atol=TestCase.atol) (NaN equals NaN); strings exactly; bfloat16 compared "
                     "as float32 with rtol at least 2**-6",
        "collected": len(cases),
        "written": len(written),
        "skipped_count": len(skipped),
        "skip_reasons": dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
        "cases": written,
        "skipped": skipped,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    (out / ".stamp").write_text(node_stamp())  # last: its presence says node/ is complete
    log(f"node: wrote {len(written)} of {len(cases)} cases, skipped {len(skipped)} {manifest['skip_reasons']}")


def node_stamp():
    """What node/ depends on: the code that writes it, onnx (the definitions) and what computes
    and serialises their data."""
    code = "".join(inspect.getsource(f) for f in (qualified, graph_op_types, node_tensor, write_node))
    lines = [
        f"node-version {NODE_VERSION}",
        f"node-code-sha256 {hashlib.sha256((code + repr(VALUE_KINDS)).encode()).hexdigest()}",
        f"onnx {onnx.__version__}",
        f"numpy {np.__version__}",
        f"ml_dtypes {importlib.metadata.version('ml_dtypes')}",
        f"protobuf {importlib.metadata.version('protobuf')}",
    ]
    return "\n".join(lines) + "\n"


def start_node(out):
    """Fills `out` (the new tree's node/) and answers the process still writing it, or None when
    the current tree's node/ is what write_node would write now (its .stamp says so): then that
    directory is moved into the new tree (8,000 files neither rewritten nor deleted, which this
    disk makes slow). Otherwise starts `onnx_testdata.py --node out`, write_node in a second
    process (with a fixed hash seed): collecting the suite costs several seconds of pure Python
    (onnx's reference 3-D pooling), which then overlaps the onnxruntime work here."""
    previous = OUT / "node"
    if (previous / ".stamp").is_file() and (previous / ".stamp").read_text() == node_stamp():
        previous.rename(out)
        log(f"node: {previous.relative_to(ROOT)} is up to date: kept")
        return None
    env = dict(os.environ, PYTHONHASHSEED="0")
    return subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--node", str(out)], env=env)


def finish_node(process):
    if process is not None and process.wait() != 0:
        raise SystemExit(f"node: the node-suite writer failed (exit status {process.returncode})")


# ---------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------


def stamp_text():
    script = Path(__file__).read_bytes()
    missing = [f for f in MINILM_FILES if not (MINILM / f).is_file()]
    if missing:
        raise SystemExit(f"minilm: {', '.join(missing)} missing from {MINILM}: run scripts/fetch-minilm.sh")
    weights = [FASHION / "1" / "model.safetensors", FASHION / "2" / "model.safetensors"]
    weights += [MINILM / f for f in MINILM_FILES]
    lines = [
        f"script-version {SCRIPT_VERSION}",
        f"script-sha256 {hashlib.sha256(script).hexdigest()}",
        f"onnx {onnx.__version__}",
        f"onnxruntime {ort.__version__}",
        f"numpy {np.__version__}",
        f"tokenizers {tokenizers.__version__}",
        # not pinned by install-onnx.sh (onnx's dependency): its float -> int4/int2/float8 casts
        # make some node cases' expected outputs
        f"ml_dtypes {importlib.metadata.version('ml_dtypes')}",
    ] + [f"{p.relative_to(ROOT)} {hashlib.sha256(p.read_bytes()).hexdigest()}" for p in weights]
    return "\n".join(lines) + "\n"


def build(out):
    node = start_node(out / "node")
    try:
        results = build_rest(out)
        finish_node(node)
    except BaseException:
        if node is None:
            (out / "node").rename(OUT / "node")  # give the kept node/ back
        else:
            node.kill()
            node.wait()
        raise
    # scripts/onnx_node_reference.py's output (run by hand) goes with the rest of the old tree.
    (out / "node" / "onnxruntime.json").unlink(missing_ok=True)
    return results


def build_rest(out):
    report = {}
    np.random.seed(0)  # nothing should use the global RNG; this makes sure if something does

    # a. the onnx wheel's backend test cases
    data = Path(onnx.__file__).parent / "backend" / "test" / "data"
    backend_counts = {}
    for kind in ("pytorch-converted", "pytorch-operator", "simple"):
        shutil.copytree(data / kind, out / "backend" / kind)
        backend_counts[kind] = sum(1 for p in (out / "backend" / kind).iterdir() if p.is_dir())
    log(f"backend: copied {backend_counts}")

    # b. the repository's Fashion-MNIST models
    accuracies = write_fashion(out, report)

    # c. cnn-zoo
    rng = np.random.default_rng(13)
    model = cnn_zoo()
    # onnx.reference's BatchNormalization for opsets 9-13 applies the default momentum as if
    # training (onnx 1.23.2), so the cross-check reads the graph at opset 14, where
    # BatchNormalization defaults to inference and no other op used here changes meaning.
    write_case(out / "cnn-zoo", model, {"x": rng.standard_normal((2, 3, 32, 32)).astype(np.float32)},
               reference_opset=14)
    report["cnn-zoo"] = describe(model)

    # d. transformer (row 1 pads its last two tokens, so the mask matters)
    rng = np.random.default_rng(17)
    ids = rng.integers(0, VOCAB, size=(2, 7), dtype=np.int64)
    mask = np.ones((2, 7), np.int64)
    mask[1, 5:] = 0
    model = transformer()
    write_case(out / "transformer", model, {"input_ids": ids, "attention_mask": mask})
    report["transformer"] = describe(model)

    # g. all-MiniLM-L6-v2 from the repository's safetensors
    minilm_embeddings = write_minilm(out, report)

    # f. external data, done right
    write_external_ok(out, report)

    # e. hostile models
    hostile = write_hostile(out, out / "cnn-zoo" / "model.onnx")

    manifest = {"backend": backend_counts, "models": report, "hostile": hostile}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return backend_counts, accuracies, report, hostile, minilm_embeddings


def main():
    # One run at a time (scripts/test.sh and a run by hand may overlap): a second waits, then
    # finds the tree up to date.
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with open(OUT.with_name(OUT.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        update()


def update():
    stamp = stamp_text()
    # node/.stamp too: a build killed after moving node/ out (start_node) leaves the tree without it
    complete = (OUT / "node" / ".stamp").is_file()
    if complete and (OUT / ".stamp").is_file() and (OUT / ".stamp").read_text() == stamp:
        print(f"onnx-testdata: {OUT.relative_to(ROOT)} is up to date")
        return
    partial = OUT.with_name(OUT.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    backend_counts, accuracies, report, hostile, minilm_embeddings = build(partial)
    (partial / ".stamp").write_text(stamp)
    shutil.rmtree(OUT, ignore_errors=True)
    partial.rename(OUT)

    files = [p for p in OUT.rglob("*") if p.is_file()]
    print(f"onnx-testdata: wrote {len(files)} files ({sum(p.stat().st_size for p in files) / 1e6:.1f} MB) "
          f"under {OUT.relative_to(ROOT)} (onnx {onnx.__version__}, onnxruntime {ort.__version__})")
    print(f"  backend cases: {backend_counts}")
    node = json.loads((OUT / "node" / "manifest.json").read_text())
    print(f"  node cases: {node['written']} of {node['collected']} written, {node['skipped_count']} skipped "
          f"({', '.join(f'{n} {why}' for why, n in node['skip_reasons'].items())})")
    for case, acc in accuracies.items():
        print(f"  {case}: test accuracy {acc['onnxruntime']:.2f}% (model.toml: {acc['model_toml']:.2f}%)")
    for case, info in report.items():
        ios = lambda vs: ", ".join(f"{v['name']} {v['dtype']} {v['shape']}" for v in vs)
        print(f"  {case}: {info['nodes']} nodes, opset {info['opset']}, in: {ios(info['inputs'])}; out: {ios(info['outputs'])}")
    print(f"  hostile: {', '.join(hostile)}")
    minilm_info = report["minilm"]
    print(f"  minilm: {minilm_info['nodes']} nodes, tokens {minilm_info['tokens']}, "
          f"mask fill {MINILM_MASK_FILL:g}, cosine(text 0, text 1) {minilm_info['cosine_0_1']:.4f}; "
          f"reference.json, first values:")
    for text, embedding in zip(MINILM_TEXTS, minilm_embeddings):
        print(f"    {text!r}: {', '.join(f'{v:.6f}' for v in embedding[:5])}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--node":
        write_node(Path(sys.argv[2]))
    elif len(sys.argv) == 1:
        main()
    else:
        raise SystemExit(f"usage: {sys.argv[0]} [--node DIR]")
