"""onnxruntime's side of benches/onnx.sh: the same ONNX file and inputs as examples/onnx_bench.rs
(test_data_set_0/input_K.pb, first dimension tiled or cut to BATCH rows), intra-op threads 2,
inter-op 1, onnxruntime's default graph optimisations (what its users get). Runs passes for
SECONDS, then prints one JSON line: passes, wall µs per pass (mean, median), process CPU µs per
pass. Usage: onnx_ort.py DIR BATCH SECONDS
"""
import json
import pathlib
import resource
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper


def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def with_rows(a, rows):
    reps = -(-rows // a.shape[0])
    return np.concatenate([a] * reps, axis=0)[:rows]


def main():
    d, batch, seconds = pathlib.Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(d / "model.onnx"), options, providers=["CPUExecutionProvider"])
    feeds = {}
    for k, meta in enumerate(session.get_inputs()):
        t = onnx.TensorProto()
        t.ParseFromString((d / "test_data_set_0" / f"input_{k}.pb").read_bytes())
        feeds[meta.name] = with_rows(numpy_helper.to_array(t), batch)
    for _ in range(3):
        session.run(None, feeds)
    times = []
    start, cpu_start = time.perf_counter(), cpu_seconds()
    while time.perf_counter() - start < seconds or len(times) < 5:
        one = time.perf_counter()
        session.run(None, feeds)
        times.append((time.perf_counter() - one) * 1e6)
    wall = (time.perf_counter() - start) * 1e6
    cpu = (cpu_seconds() - cpu_start) * 1e6
    times.sort()
    print(json.dumps({
        "runtime": "onnxruntime " + ort.__version__,
        "batch": batch,
        "passes": len(times),
        "mean_us": round(wall / len(times), 1),
        "p50_us": round(times[len(times) // 2], 1),
        "cpu_us_per_pass": round(cpu / len(times), 1),
    }))


if __name__ == "__main__":
    main()
