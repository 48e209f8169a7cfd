"""Builds a Triton model repository and its reference answers (run by
scripts/check-triton-repository.sh with target/onnx-venv/bin/python).

Usage: triton_repository.py OUT_DIR

OUT_DIR/repo, laid out as Triton's model repository docs show:
  fashion_cnn/   a full config.pbtxt (version policy latest 2, dynamic batching, instance group,
                 parameters, output labels), labels.txt, versions 1, 2 and 3 (fashion-cnn's
                 model.onnx each): 2 and 3 serve, 1 is outside the version policy.
  fashion_mlp/   1/model.onnx only: the config is auto-completed from the graph.
  detector_trt/  platform tensorrt_plan: a platform burnserve does not run.
  broken_cfg/    a config.pbtxt that does not parse (line 3), and 1/model.onnx.
OUT_DIR/reference: for each servable model a seeded batch of 5 inputs and onnxruntime's outputs
(NAME.input.npy, NAME.output.npy), and models.json: what scripts/triton_repository_check.py
expects of each model (names, dims, config values, repository index states).

The ONNX files come from scripts/install-onnx-testdata.sh (target/onnx-testdata/).
"""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

ROOT = Path(__file__).resolve().parent.parent
TESTDATA = ROOT / "target" / "onnx-testdata"
LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
          "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
BATCH = 5
SEEDS = {"fashion_cnn": 1, "fashion_mlp": 2}
SOURCES = {"fashion_cnn": "fashion-cnn", "fashion_mlp": "fashion-mlp"}

# fashion_cnn's config values: written into config.pbtxt and, the same values, into models.json
# as what get_model_config must answer (paths into the config, snake_case as in model_config.proto).
CNN = {
    "max_batch_size": 8,
    "num_versions": 2,
    "max_queue_delay_microseconds": 2000,
    "preferred_batch_size": [4, 8],
    "max_queue_size": 64,
    "default_timeout_microseconds": 5000000,
    "instance_count": 2,
    "instance_kind": "KIND_CPU",
    "intra_op_thread_count": "1",
}


def graph_io(path):
    """(name, dims without the batch dimension) of the graph's one real input and one output."""
    graph = onnx.load(str(path)).graph
    weights = {init.name for init in graph.initializer}
    inputs = [t for t in graph.input if t.name not in weights]
    if len(inputs) != 1 or len(graph.output) != 1:
        sys.exit(f"{path}: expected one input and one output, got "
                 f"{[t.name for t in inputs]} -> {[t.name for t in graph.output]}")

    def describe(tensor):
        kind = tensor.type.tensor_type
        if kind.elem_type != onnx.TensorProto.FLOAT:
            sys.exit(f"{path}: {tensor.name} is not FLOAT")
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in kind.shape.dim]
        if not dims or dims[0] > 0:
            sys.exit(f"{path}: {tensor.name} has no dynamic batch dimension: {dims}")
        if any(d <= 0 for d in dims[1:]):
            sys.exit(f"{path}: {tensor.name} has a dynamic dimension besides the batch: {dims}")
        return tensor.name, dims[1:]

    return describe(inputs[0]), describe(graph.output[0])


def dims_text(dims):
    return "[ " + ", ".join(str(d) for d in dims) + " ]"


def cnn_config(inp, out):
    (in_name, in_dims), (out_name, out_dims) = inp, out
    return f"""name: "fashion_cnn"
platform: "onnxruntime_onnx"
max_batch_size: {CNN["max_batch_size"]}
version_policy: {{ latest: {{ num_versions: {CNN["num_versions"]} }} }}
input [
  {{
    name: "{in_name}"
    data_type: TYPE_FP32
    dims: {dims_text(in_dims)}
  }}
]
output [
  {{
    name: "{out_name}"
    data_type: TYPE_FP32
    dims: {dims_text(out_dims)}
    label_filename: "labels.txt"
  }}
]
dynamic_batching {{
  max_queue_delay_microseconds: {CNN["max_queue_delay_microseconds"]}
  preferred_batch_size: {dims_text(CNN["preferred_batch_size"])}
  default_queue_policy {{
    max_queue_size: {CNN["max_queue_size"]}
    default_timeout_microseconds: {CNN["default_timeout_microseconds"]}
  }}
}}
instance_group [
  {{
    count: {CNN["instance_count"]}
    kind: {CNN["instance_kind"]}
  }}
]
parameters {{
  key: "intra_op_thread_count"
  value: {{ string_value: "{CNN["intra_op_thread_count"]}" }}
}}
"""


DETECTOR_CONFIG = """name: "detector_trt"
platform: "tensorrt_plan"
max_batch_size: 4
input [
  {
    name: "images"
    data_type: TYPE_FP32
    dims: [ 3, 64, 64 ]
  }
]
output [
  {
    name: "detections"
    data_type: TYPE_FP32
    dims: [ 100, 6 ]
  }
]
"""

# Line 3 does not parse: max_batch_size is an int32, not a string.
BROKEN_CONFIG = """name: "broken_cfg"
platform: "onnxruntime_onnx"
max_batch_size: "eight"
"""


def reference(name, model_path, in_name, out_name, in_dims, ref_dir):
    rng = np.random.default_rng(SEEDS[name])
    batch = rng.random((BATCH, *in_dims), dtype=np.float32)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    (output,) = session.run([out_name], {in_name: batch})
    output = np.asarray(output, dtype=np.float32)
    np.save(ref_dir / f"{name}.input.npy", batch)
    np.save(ref_dir / f"{name}.output.npy", output)
    return batch, output


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: triton_repository.py OUT_DIR")
    out_dir = Path(sys.argv[1])
    repo, ref_dir = out_dir / "repo", out_dir / "reference"
    for source in SOURCES.values():
        if not (TESTDATA / source / "model.onnx").is_file():
            print(f"no {TESTDATA / source / 'model.onnx'}: run scripts/install-onnx-testdata.sh",
                  file=sys.stderr)
            sys.exit(2)
    shutil.rmtree(repo, ignore_errors=True)
    shutil.rmtree(ref_dir, ignore_errors=True)
    repo.mkdir(parents=True)
    ref_dir.mkdir(parents=True)

    models = {}
    # fashion_cnn: full config, three versions, labels.
    cnn_src = TESTDATA / SOURCES["fashion_cnn"] / "model.onnx"
    cnn_in, cnn_out = graph_io(cnn_src)
    (repo / "fashion_cnn").mkdir()
    (repo / "fashion_cnn" / "config.pbtxt").write_text(cnn_config(cnn_in, cnn_out))
    (repo / "fashion_cnn" / "labels.txt").write_text("".join(f"{label}\n" for label in LABELS))
    for version in ("1", "2", "3"):
        (repo / "fashion_cnn" / version).mkdir()
        shutil.copyfile(cnn_src, repo / "fashion_cnn" / version / "model.onnx")

    # fashion_mlp: no config.pbtxt.
    mlp_src = TESTDATA / SOURCES["fashion_mlp"] / "model.onnx"
    mlp_in, mlp_out = graph_io(mlp_src)
    (repo / "fashion_mlp" / "1").mkdir(parents=True)
    shutil.copyfile(mlp_src, repo / "fashion_mlp" / "1" / "model.onnx")

    # detector_trt: a platform burnserve does not run.
    (repo / "detector_trt" / "1").mkdir(parents=True)
    (repo / "detector_trt" / "config.pbtxt").write_text(DETECTOR_CONFIG)
    (repo / "detector_trt" / "1" / "model.plan").write_bytes(
        b"not a TensorRT engine: burnserve does not run tensorrt_plan\n")

    # broken_cfg: a config that does not parse, beside a model that would.
    (repo / "broken_cfg" / "1").mkdir(parents=True)
    (repo / "broken_cfg" / "config.pbtxt").write_text(BROKEN_CONFIG)
    shutil.copyfile(mlp_src, repo / "broken_cfg" / "1" / "model.onnx")

    for name, src, (in_name, in_dims), (out_name, out_dims) in (
            ("fashion_cnn", cnn_src, cnn_in, cnn_out), ("fashion_mlp", mlp_src, mlp_in, mlp_out)):
        batch, output = reference(name, src, in_name, out_name, in_dims, ref_dir)
        models[name] = {
            "input": in_name, "input_dims": in_dims, "input_shape": list(batch.shape),
            "output": out_name, "output_dims": out_dims, "output_shape": list(output.shape),
            "datatype": "FP32", "platform": "onnxruntime_onnx",
            "input_file": f"{name}.input.npy", "output_file": f"{name}.output.npy",
        }
    models["fashion_cnn"].update({
        "config": "config.pbtxt",
        "max_batch_size": CNN["max_batch_size"],
        "ready_versions": ["2", "3"], "unready_versions": ["1"], "default_version": "3",
        "labels": LABELS,
        # What get_model_config must answer beyond names and dims: [path, value].
        "expected_config": [
            [["name"], "fashion_cnn"],
            [["platform"], "onnxruntime_onnx"],
            [["max_batch_size"], CNN["max_batch_size"]],
            [["version_policy", "latest", "num_versions"], CNN["num_versions"]],
            [["output", 0, "label_filename"], "labels.txt"],
            [["dynamic_batching", "preferred_batch_size"], CNN["preferred_batch_size"]],
            [["dynamic_batching", "max_queue_delay_microseconds"],
             CNN["max_queue_delay_microseconds"]],
            [["dynamic_batching", "default_queue_policy", "max_queue_size"], CNN["max_queue_size"]],
            [["dynamic_batching", "default_queue_policy", "default_timeout_microseconds"],
             CNN["default_timeout_microseconds"]],
            [["instance_group", 0, "count"], CNN["instance_count"]],
            [["instance_group", 0, "kind"], CNN["instance_kind"]],
            [["parameters", "intra_op_thread_count", "string_value"], CNN["intra_op_thread_count"]],
        ],
    })
    models["fashion_mlp"].update({
        "config": "auto-complete",
        "max_batch_size": None,  # auto-completed: any value > 0
        "ready_versions": ["1"], "unready_versions": [], "default_version": "1",
        "expected_config": [
            [["name"], "fashion_mlp"],
            [["platform"], "onnxruntime_onnx"],
        ],
    })
    description = {
        "servable": models,
        "unservable": {
            "detector_trt": {"platform": "tensorrt_plan", "reason_contains": ["tensorrt_plan"],
                             "input": "images", "input_dims": [3, 64, 64]},
            "broken_cfg": {"reason_contains": ["config.pbtxt"], "reason_line": 3,
                           "input": mlp_in[0], "input_dims": mlp_in[1]},
        },
        # The repository index: one entry per (name, version); version "" is the whole model.
        # "absent_ok": the entry may be left out, but if listed it must have this state.
        "index": [
            {"name": "fashion_cnn", "version": "1", "state": "UNAVAILABLE", "absent_ok": True},
            {"name": "fashion_cnn", "version": "2", "state": "READY"},
            {"name": "fashion_cnn", "version": "3", "state": "READY"},
            {"name": "fashion_mlp", "version": "1", "state": "READY"},
            {"name": "detector_trt", "state": "UNAVAILABLE", "reason_contains": ["tensorrt_plan"]},
            {"name": "broken_cfg", "state": "UNAVAILABLE", "reason_contains": ["config.pbtxt"],
             "reason_line": 3},
        ],
    }
    (ref_dir / "models.json").write_text(json.dumps(description, indent=2) + "\n")
    for name, model in models.items():
        print(f"{name}: {model['input']} {model['input_dims']} -> {model['output']} "
              f"{model['output_dims']} ({model['config']})", file=sys.stderr)
    print(f"repository in {repo}, reference in {ref_dir}", file=sys.stderr)


if __name__ == "__main__":
    main()
