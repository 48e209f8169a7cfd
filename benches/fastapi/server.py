"""The "tutorial stack" baseline: FastAPI + uvicorn + prometheus_client serving the Fashion-MNIST MLP
with numpy, the way a typical tutorial would. Mirrors burnserve's simple predict API.

    python benches/fastapi/server.py --port 8081 [--workers 2] [--weights path/to/model.safetensors]

Run it with the venv from scripts/install-bench-python.sh.
"""

import argparse
import json
import os
import sys
import time
from typing import Any, Optional

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from pydantic import BaseModel

# Run as a script, this module is `__main__` (`__mp_main__` in uvicorn's spawned workers), while the
# workers load the app as "server:app": alias the names so the module runs once per process and the
# prometheus metrics are registered once.
if __name__ in ("__main__", "__mp_main__"):
    sys.modules.setdefault("server", sys.modules[__name__])

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DEFAULT_WEIGHTS = os.path.join(REPO, "models", "repository", "fashion", "1", "model.safetensors")
# How workers started by uvicorn (which import this module afresh) learn --weights.
WEIGHTS_ENV = "BENCH_FASTAPI_WEIGHTS"

MODEL, VERSION = "fashion", "1"
LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
          "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
ITEM_SHAPE, ITEM_LEN = (28, 28), 784


def load_safetensors(path):
    """Reads a safetensors file by hand: u64 LE header length, JSON header, raw LE data."""
    with open(path, "rb") as f:
        raw = f.read()
    header_len = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + header_len])
    base = 8 + header_len
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            raise ValueError(f"{name}: dtype {info['dtype']}, expected F32")
        start, end = info["data_offsets"]
        array = np.frombuffer(raw, dtype="<f4", count=(end - start) // 4, offset=base + start)
        tensors[name] = array.reshape(info["shape"]).astype(np.float32)
    return tensors


def load_layers(path):
    """[(W [in, out], b [out])] for layers 0..2, checking the expected shapes."""
    tensors = load_safetensors(path)
    shapes = [(784, 256), (256, 128), (128, 10)]
    layers = []
    for i, (n_in, n_out) in enumerate(shapes):
        w, b = tensors.get(f"layers.{i}.weight"), tensors.get(f"layers.{i}.bias")
        if w is None or b is None:
            raise ValueError(f"{path}: no layers.{i}.weight/bias; tensors are {sorted(tensors)}"
                             " (expected the MLP of models/repository/fashion/1)")
        if w.shape != (n_in, n_out) or b.shape != (n_out,):
            raise ValueError(f"layer {i}: shapes {w.shape}, {b.shape}")
        layers.append((w, b))
    return layers


def forward(layers, x):
    """x: float32 [n, 784] -> softmax probabilities float32 [n, 10]."""
    for i, (w, b) in enumerate(layers):
        x = x @ w + b
        if i < len(layers) - 1:
            x = np.maximum(x, np.float32(0))
    x = x - x.max(axis=1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=1, keepdims=True)


# Loaded at import in uvicorn's workers, and by main() once --weights is known when run as a script.
LAYERS = None if __name__ == "__main__" else load_layers(os.environ.get(WEIGHTS_ENV, DEFAULT_WEIGHTS))

REQUESTS = Counter("inference_requests_total", "Predict requests served", ["model", "version"])
LATENCY = Histogram("inference_latency_seconds", "Predict request latency", ["model", "version"])

app = FastAPI(title="fashion-mnist tutorial baseline")


class PredictRequest(BaseModel):
    inputs: Any
    top_k: int = 3
    datatype: Optional[str] = None
    timeout_ms: Optional[int] = None


def error(status, message):
    return JSONResponse({"error": message, "error_type": "invalid_input"}, status_code=status)


@app.exception_handler(RequestValidationError)
async def validation_error(request: Request, exc: RequestValidationError):
    return error(400, f"invalid request body: {exc.errors()}")


def to_batch(inputs, datatype):
    """One item ([784] or [28, 28]) or a list of them -> float32 [n, 784]; ValueError if not."""
    try:
        x = np.asarray(inputs, dtype=np.float32)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"inputs are not a rectangular array of numbers: {exc}") from None
    if x.shape in ((ITEM_LEN,), ITEM_SHAPE):
        x = x.reshape(1, ITEM_LEN)
    elif x.ndim == 2 and x.shape[1] == ITEM_LEN or x.ndim == 3 and x.shape[1:] == ITEM_SHAPE:
        x = x.reshape(x.shape[0], ITEM_LEN)
    else:
        raise ValueError(f"inputs have shape {list(x.shape)}; expected [784], [28, 28], "
                         "[n, 784] or [n, 28, 28]")
    if x.shape[0] == 0:
        raise ValueError("inputs hold no items")
    if datatype == "UINT8":
        if ((x < 0) | (x > 255) | (x != np.floor(x))).any():
            raise ValueError("UINT8 inputs must be integers in 0..=255")
        x = x / np.float32(255)
    elif datatype not in (None, "FP32"):
        raise ValueError(f"datatype {datatype}; this model takes FP32 or UINT8")
    return x


@app.post("/v1/models/fashion/predict")
async def predict(body: PredictRequest):
    start = time.perf_counter()
    REQUESTS.labels(MODEL, VERSION).inc()
    if body.top_k < 1:
        return error(400, "top_k must be at least 1")
    try:
        x = to_batch(body.inputs, body.datatype)
    except ValueError as exc:
        return error(422, str(exc))
    t0 = time.perf_counter()
    probs = forward(LAYERS, x)
    inference_ms = (time.perf_counter() - t0) * 1000.0
    k = min(body.top_k, probs.shape[1])
    # Stable sort of the negated scores: best first, ties keep the lower index first.
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    predictions = [
        [{"index": int(i), "label": LABELS[i], "score": float(row[i])} for i in idx]
        for row, idx in zip(probs, top)
    ]
    response = JSONResponse(
        {"model": MODEL, "version": VERSION, "outputs": probs.tolist(), "predictions": predictions},
        headers={"x-inference-time": f"{inference_ms:.3f}", "x-queue-time": "0"},
    )
    LATENCY.labels(MODEL, VERSION).observe(time.perf_counter() - start)
    return response


@app.get("/metrics")
def metrics():
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@app.get("/health")
async def health():
    return {"status": "ok"}


def main():
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--weights", default=None,
                        help="safetensors file (default: models/repository/fashion/1/model.safetensors)")
    args = parser.parse_args()
    options = dict(host="127.0.0.1", port=args.port, log_level="warning", access_log=False)
    global LAYERS
    os.environ[WEIGHTS_ENV] = os.path.abspath(args.weights or DEFAULT_WEIGHTS)
    LAYERS = load_layers(os.environ[WEIGHTS_ENV])  # fails early on bad weights, even with workers
    if args.workers > 1:
        # Workers import the app afresh; they read --weights from the environment.
        uvicorn.run("server:app", app_dir=HERE, workers=args.workers, **options)
    else:
        uvicorn.run(app, **options)


if __name__ == "__main__":
    main()
