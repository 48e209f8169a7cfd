"""Self-check of a running baseline server (benches/fastapi/server.py); starts nothing.

    target/bench-py/bin/python benches/fastapi/check.py --url http://127.0.0.1:8081

Posts 4 deterministic items, compares the outputs with a local numpy forward pass of the same
weights, checks that a wrong-sized input gets 422 and that /metrics counts requests. Exits
non-zero with a message on any mismatch.
"""

import argparse
import json
import os
import sys
import urllib.error
import urllib.request

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_WEIGHTS = os.path.join(REPO, "models", "repository", "fashion", "1", "model.safetensors")


def deterministic_inputs(n=4):
    """float32 [n, 784] in [0, 1], different per item."""
    i = np.arange(n * 784, dtype=np.int64).reshape(n, 784)
    return ((i * 37 + (i // 784) * 11) % 256 / 255.0).astype(np.float32)


def load_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", (name, info["dtype"])
        start, end = info["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + start:8 + n + end], dtype="<f4").reshape(info["shape"])
    return out


def reference_forward(weights, x):
    t = load_safetensors(weights)
    for i in range(3):
        x = x @ t[f"layers.{i}.weight"].astype(np.float32) + t[f"layers.{i}.bias"].astype(np.float32)
        if i < 2:
            x = np.maximum(x, np.float32(0))
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def request(url, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def fail(message):
    print(f"check: FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="base URL, e.g. http://127.0.0.1:8081")
    parser.add_argument("--path", default="/v1/models/fashion/predict")
    parser.add_argument("--weights", default=DEFAULT_WEIGHTS)
    parser.add_argument("--tol", type=float, default=1e-6)
    args = parser.parse_args()
    base = args.url.rstrip("/")

    x = deterministic_inputs(4)
    expected = reference_forward(args.weights, x)

    status, headers, body = request(base + args.path, {"inputs": x.tolist()})
    if status != 200:
        fail(f"predict answered {status}: {body[:500]!r}")
    reply = json.loads(body)
    outputs = np.asarray(reply.get("outputs"), dtype=np.float32)
    if outputs.shape != expected.shape:
        fail(f"outputs have shape {outputs.shape}, expected {expected.shape}")
    diff = float(np.abs(outputs - expected).max())
    if not diff <= args.tol:
        fail(f"outputs differ from the local forward pass by {diff:.3g} > {args.tol:g}")
    if reply.get("model") != "fashion" or reply.get("version") != "1":
        fail(f"model/version are {reply.get('model')!r}/{reply.get('version')!r}")
    preds = reply.get("predictions") or []
    if len(preds) != 4 or any(len(p) != 3 for p in preds):
        fail(f"expected 4 x top-3 predictions, got {preds!r}")
    if [p[0]["index"] for p in preds] != expected.argmax(axis=1).tolist():
        fail("top predictions do not match the local argmax")
    lower = {k.lower() for k in headers}
    if not {"x-inference-time", "x-queue-time"} <= lower:
        fail(f"missing timing headers; got {sorted(lower)}")

    # One item as nested 28x28 must give the same row.
    status, _, body = request(base + args.path, {"inputs": x[0].reshape(28, 28).tolist(), "top_k": 1})
    if status != 200:
        fail(f"nested single item answered {status}: {body[:500]!r}")
    single = json.loads(body)
    row = np.asarray(single["outputs"], dtype=np.float32)
    if row.shape != (1, 10) or float(np.abs(row[0] - outputs[0]).max()) > args.tol:
        fail(f"nested single item gave {row.shape} / a different row")
    if len(single["predictions"][0]) != 1:
        fail("top_k=1 was not honoured")

    status, _, body = request(base + args.path, {"inputs": [0.5] * 783})
    if status != 422:
        fail(f"a 783-value input answered {status}, expected 422: {body[:300]!r}")
    if json.loads(body).get("error_type") != "invalid_input":
        fail(f"422 body lacks error_type invalid_input: {body[:300]!r}")

    status, _, body = request(base + "/metrics")
    if status != 200 or b"inference_requests_total" not in body:
        fail(f"/metrics answered {status} without inference_requests_total")

    print(f"check: OK ({base}{args.path}: max abs diff {diff:.3g} vs local numpy, "
          f"422 on bad input, metrics present)")


if __name__ == "__main__":
    main()
