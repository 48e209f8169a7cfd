#!/usr/bin/env python3
"""Runs every case of the ONNX operator-level conformance suite that scripts/onnx_testdata.py
wrote to target/onnx-testdata/node/ through onnxruntime, as the reference figure for the Rust
ONNX interpreter, and writes target/onnx-testdata/node/onnxruntime.json (case -> outcome).

Run it by hand, after scripts/install-onnx-testdata.sh, with the venv that script uses:

    target/onnx-venv/bin/python scripts/onnx_node_reference.py [NODE_DIR]

(NODE_DIR defaults to target/onnx-testdata/node.)

onnxruntime runs on CPUExecutionProvider with 2 intra-op threads and its default graph
optimisations. Each case is compared as onnx's own backend test runner
(onnx.backend.test.runner.Runner.assert_similar_outputs) compares: per output, equal shape,
strings exactly, otherwise equal dtype and numpy.testing.assert_allclose with the case's rtol and
atol from node/manifest.json (NaN equals NaN; bfloat16 as float32 with rtol at least 2**-6).
Tensors of the types numpy lacks (bfloat16, float8, int4/uint4, int2/uint2, float4) go in and
come out as OrtValues holding their ONNX bytes (sub-byte types packed), decoded by onnx.
StringNormalizer's locale cases need the en_US.UTF-8 locale installed, or they fail.

Outcomes: "passed"; "failed" (the session ran but an output differs, or running it raised);
"not-loaded" (onnxruntime refused the model: an unknown or unimplemented op, type or opset).
onnxruntime.json keeps a one-line reason for every case that did not pass.
"""

import ctypes
import json
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, numpy_helper

ROOT = Path(__file__).resolve().parent.parent
NODE = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "target" / "onnx-testdata" / "node"
THREADS = 2


def shown(path):
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def load_tensor(path):
    tensor = TensorProto()
    tensor.ParseFromString(path.read_bytes())
    return tensor


def native(tensor):
    """Whether onnxruntime's Python API takes and gives this type as a numpy array (not
    bfloat16, float8, int4, float4, int2 ...: onnx answers those as ml_dtypes arrays)."""
    return numpy_helper.to_array(tensor).dtype.num < 256  # numpy user-defined types start at 256


def ort_type(data_type):
    return f"tensor({TensorProto.DataType.Name(data_type).lower()})"


def to_ortvalue(tensor):
    """An OrtValue of `tensor`'s ONNX type holding its bytes as stored (sub-byte types packed),
    for the types the numpy path cannot carry."""
    raw = numpy_helper.from_array(numpy_helper.to_array(tensor)).raw_data
    value = ort.OrtValue.ortvalue_from_shape_and_type(list(tensor.dims), tensor.data_type)
    if value.tensor_size_in_bytes() != len(raw):
        raise ValueError(f"{ort_type(tensor.data_type)} {list(tensor.dims)}: onnxruntime holds "
                         f"{value.tensor_size_in_bytes()} bytes, the tensor {len(raw)}")
    if raw:
        ctypes.memmove(value.data_ptr(), raw, len(raw))
    return value


def from_ortvalue(value, expected):
    """An onnxruntime output as numpy (ml_dtypes for the types numpy lacks), decoded by onnx
    from its bytes when `expected` is such a type."""
    if native(expected):
        return value.numpy()
    if value.data_type() != ort_type(expected.data_type):
        raise TypeError(f"{value.data_type()}, expected {ort_type(expected.data_type)}")
    raw = ctypes.string_at(value.data_ptr(), value.tensor_size_in_bytes()) if value.tensor_size_in_bytes() else b""
    tensor = TensorProto(data_type=expected.data_type, dims=value.shape(), raw_data=raw)
    return numpy_helper.to_array(tensor)


def text(array):
    """A string tensor as str elements (onnx answers bytes, onnxruntime str)."""
    return np.vectorize(lambda v: v.decode() if isinstance(v, bytes) else v, otypes=[object])(array)


def compare(expected, actual, rtol, atol):
    """None when `actual` matches `expected` as onnx's backend runner judges, else why not."""
    if len(actual) != len(expected):
        return f"{len(actual)} outputs, expected {len(expected)}"
    for i, (ref, out) in enumerate(zip(expected, actual)):
        out = np.asarray(out)
        if out.shape != ref.shape:
            return f"output {i}: shape {list(out.shape)}, expected {list(ref.shape)}"
        if ref.dtype == object:
            if not np.array_equal(text(out), text(ref)):
                return f"output {i}: strings differ"
            continue
        if out.dtype != ref.dtype:
            return f"output {i}: dtype {out.dtype}, expected {ref.dtype}"
        output_rtol = rtol
        if out.dtype.name == "bfloat16":
            output_rtol = max(rtol, 2**-6)
            out, ref = out.astype(np.float32), ref.astype(np.float32)
        try:
            np.testing.assert_allclose(out, ref, rtol=output_rtol, atol=atol)
        except AssertionError as error:
            detail = " ".join(line.strip() for line in str(error).splitlines() if "Max" in line)
            return f"output {i}: not within rtol {output_rtol:g} atol {atol:g}: {detail}".rstrip(": ")
        except TypeError as error:  # dtypes numpy cannot compare (float8, int4, ...)
            return f"output {i}: {out.dtype} not comparable: {error}"
    return None


def one_line(error):
    """The error on one line; a long one keeps its start and its end (where the reason is)."""
    message = " ".join(str(error).split())
    return message if len(message) <= 500 else f"{message[:140]} ... {message[-340:]}"


def run_case(case_dir, info, options):
    """(outcome, reason or None)."""
    try:
        session = ort.InferenceSession(str(case_dir / "model.onnx"), options, providers=["CPUExecutionProvider"])
    except Exception as error:
        return "not-loaded", one_line(error)
    for data in sorted(case_dir.glob("test_data_set_*")):
        inputs = {name: load_tensor(data / f"input_{k}.pb") for k, name in enumerate(info["inputs"])}
        expected = [load_tensor(data / f"output_{k}.pb") for k in range(len(info["outputs"]))]
        try:
            if all(native(t) for t in [*inputs.values(), *expected]):
                feeds = {name: numpy_helper.to_array(t) for name, t in inputs.items()}
                actual = session.run(info["outputs"], feeds)
            else:
                feeds = {name: ort.OrtValue.ortvalue_from_numpy(numpy_helper.to_array(t)) if native(t)
                         else to_ortvalue(t) for name, t in inputs.items()}
                values = session.run_with_ort_values(info["outputs"], feeds)
                actual = [from_ortvalue(v, t) for v, t in zip(values, expected)]
        except Exception as error:
            return "failed", f"{data.name}: run raised: {one_line(error)}"
        why = compare([numpy_helper.to_array(t) for t in expected], actual, info["rtol"], info["atol"])
        if why:
            return "failed", f"{data.name}: {why}"
    return "passed", None


def main():
    manifest_path = NODE / "manifest.json"
    if not manifest_path.is_file():
        raise SystemExit(f"{shown(manifest_path)} is missing: run scripts/install-onnx-testdata.sh")
    manifest = json.loads(manifest_path.read_text())
    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    options.log_severity_level = 4  # refusals come back as exceptions; keep the console quiet
    start = time.perf_counter()
    outcomes, reasons = {}, {}
    for name, info in manifest["cases"].items():
        outcome, why = run_case(NODE / name, info, options)
        outcomes[name] = outcome
        if why:
            reasons[name] = why
    seconds = time.perf_counter() - start
    counts = {k: sum(1 for o in outcomes.values() if o == k) for k in ("passed", "failed", "not-loaded")}
    report = {
        "onnx": onnx.__version__,
        "onnxruntime": ort.__version__,
        "settings": f"CPUExecutionProvider, intra_op_num_threads {THREADS}, default graph optimisations",
        "cases": len(outcomes),
        "skipped_by_writer": manifest["skipped_count"],
        "counts": counts,
        "outcomes": outcomes,
        "reasons": reasons,
    }
    (NODE / "onnxruntime.json").write_text(json.dumps(report, indent=2) + "\n")
    by_op = {}
    for name, outcome in outcomes.items():
        if outcome != "passed":
            op = manifest["cases"][name]["op"]
            by_op.setdefault(outcome, {}).setdefault(op, 0)
            by_op[outcome][op] += 1
    print(f"onnxruntime {ort.__version__} on {len(outcomes)} node cases (onnx {onnx.__version__}, "
          f"{manifest['skipped_count']} more not written), {seconds:.1f} s: "
          f"{counts['passed']} passed, {counts['failed']} failed, {counts['not-loaded']} did not load")
    for outcome in ("failed", "not-loaded"):
        ops = sorted(by_op.get(outcome, {}).items(), key=lambda kv: (-kv[1], kv[0]))
        if ops:
            print(f"  {outcome} by op: " + ", ".join(f"{op} {n}" for op, n in ops))
    print(f"  wrote {shown(NODE / 'onnxruntime.json')}")


if __name__ == "__main__":
    sys.exit(main())
