"""Triton's own HTTP and gRPC clients against burnserve (run by scripts/check-tritonclient.sh).

Every check compares real values: infer answers (JSON, binary, compressed, UINT8) against
burnserve's own /v1 predict of the same images, metadata against the bundled model.toml, the
repository extension by its effect on readiness and infer. Exits 1 naming each failed check.
"""

import argparse
import json
import sys
import urllib.request

import grpc
import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

failures = []


def check(name, ok, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'} {name}" + (f": {detail}" if detail and not ok else ""))
    if not ok:
        failures.append(name)


def predict(url, path, body):
    req = urllib.request.Request(f"http://{url}{path}", data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=30) as resp:
        return np.array(json.load(resp)["outputs"], dtype=np.float32)


def raises(call, *words):
    try:
        call()
    except InferenceServerException as err:
        text = str(err)
        return all(w in text for w in words), text
    return False, "no error"


def main():
    args = argparse.ArgumentParser()
    args.add_argument("--url", required=True)
    args.add_argument("--grpc-url", required=True)
    args.add_argument("--token", required=True)
    args = args.parse_args()
    admin = {"Authorization": f"Bearer {args.token}"}
    client = httpclient.InferenceServerClient(url=args.url)

    check("server live", client.is_server_live())
    check("server ready", client.is_server_ready())
    meta = client.get_server_metadata()
    check("server metadata names burnserve and binary_tensor_data",
          meta["name"] == "burnserve" and "binary_tensor_data" in meta["extensions"], meta)
    check("model ready (default and pinned)",
          client.is_model_ready("fashion") and client.is_model_ready("fashion", "1"))
    model = client.get_model_metadata("fashion")
    check("model metadata: pixels [-1, 28, 28] FP32 -> probabilities [-1, 10]",
          model["inputs"][0]["name"] == "pixels" and model["inputs"][0]["shape"] == [-1, 28, 28]
          and model["inputs"][0]["datatype"] == "FP32"
          and model["outputs"][0]["name"] == "probabilities"
          and model["outputs"][0]["shape"] == [-1, 10], model)

    rng = np.random.default_rng(7)
    images = rng.random((4, 28, 28), dtype=np.float32)
    reference = predict(args.url, "/v1/models/fashion/predict", {"inputs": images.tolist()})

    def infer(binary_in, binary_out, **kwargs):
        tensor = httpclient.InferInput("pixels", list(images.shape), "FP32")
        tensor.set_data_from_numpy(images, binary_data=binary_in)
        outputs = None if binary_out is None else [
            httpclient.InferRequestedOutput("probabilities", binary_data=binary_out)]
        return client.infer("fashion", [tensor], outputs=outputs, **kwargs).as_numpy("probabilities")

    as_json = infer(False, False)
    check("JSON infer equals /v1 predict", as_json.shape == (4, 10)
          and np.allclose(as_json, reference, atol=1e-6), (as_json.shape, reference.shape))
    for binary_in, binary_out in ((True, True), (True, False), (False, True), (True, None)):
        got = infer(binary_in, binary_out)
        check(f"binary infer (inputs binary {binary_in}, outputs binary {binary_out}) equals JSON infer",
              got is not None and got.shape == (4, 10) and np.array_equal(got, as_json))
    for algorithm in ("gzip", "deflate"):
        got = infer(True, True, request_compression_algorithm=algorithm,
                    response_compression_algorithm=algorithm)
        check(f"{algorithm} request and response", np.array_equal(got, as_json))

    v1 = predict(args.url, "/v1/models/fashion/versions/1/predict", {"inputs": images.tolist()})
    tensor = httpclient.InferInput("pixels", list(images.shape), "FP32")
    tensor.set_data_from_numpy(images, binary_data=True)
    got = client.infer("fashion", [tensor], model_version="1").as_numpy("probabilities")
    check("pinned version 1 equals /v1 predict of version 1", np.allclose(got, v1, atol=1e-6)
          and not np.allclose(v1, reference, atol=1e-3))

    pixels = (images[:2] * 255).astype(np.uint8)
    tensor = httpclient.InferInput("pixels", list(pixels.shape), "UINT8")
    tensor.set_data_from_numpy(pixels, binary_data=True)
    got = client.infer("fashion", [tensor]).as_numpy("probabilities")
    ref8 = predict(args.url, "/v1/models/fashion/predict",
                   {"inputs": pixels.astype(int).tolist(), "datatype": "UINT8"})
    check("binary UINT8 pixels equal /v1 predict with datatype UINT8", np.allclose(got, ref8, atol=1e-6))

    ok, text = raises(lambda: client.infer("nope", [tensor]), "nope")
    check("unknown model is an error naming it", ok, text)
    bad = httpclient.InferInput("pixels", [1, 27, 27], "FP32")
    bad.set_data_from_numpy(np.zeros((1, 27, 27), dtype=np.float32), binary_data=True)
    ok, text = raises(lambda: client.infer("fashion", [bad]), "shape")
    check("wrong shape is an error saying so", ok, text)
    ok, text = raises(lambda: client.infer(
        "fashion", [tensor], outputs=[httpclient.InferRequestedOutput("logits")]), "logits")
    check("unknown requested output is an error naming it", ok, text)

    config = client.get_model_config("fashion")
    check("model config: max_batch_size 64, pixels TYPE_FP32 [28, 28], dynamic batching",
          config.get("max_batch_size") == 64 and config["input"][0]["dims"] == [28, 28]
          and config["input"][0]["data_type"] == "TYPE_FP32" and "dynamic_batching" in config, config)
    stats = client.get_inference_statistics("fashion", "2")["model_stats"][0]
    served = stats["inference_stats"]["success"]["count"]
    # Sent to fashion/2 so far: 8 requests of 4 images (two /v1 predicts, six infers) and 2 of
    # 2 images (the UINT8 infer and its /v1 reference); the errors failed before a version.
    check("statistics of fashion/2 count the requests sent to it (10) and their images (36)",
          stats["version"] == "2" and served == 10 and stats["inference_count"] == 36,
          (served, stats["inference_count"]))

    index = client.get_model_repository_index(headers=admin)
    names = sorted({(m["name"], m.get("version", "")) for m in index})
    check("repository index lists fashion", any(n == "fashion" for n, _ in names), names)
    ok, text = raises(lambda: client.get_model_repository_index(), "admin")
    check("repository index without the token is refused", ok, text)
    client.unload_model("fashion", headers=admin)
    check("unloaded: not ready", not client.is_model_ready("fashion"))
    ok, text = raises(lambda: infer(True, True), "fashion")
    check("unloaded: infer refused", ok, text)
    client.load_model("fashion", headers=admin)
    check("loaded again: ready, and infer answers as before",
          client.is_model_ready("fashion") and np.array_equal(infer(True, True), as_json))

    check_grpc(args, images, as_json, v1)
    check_signature(args)
    print(f"tritonclient http and grpc: {len(failures)} failed")
    return 1 if failures else 0


def check_grpc(args, images, as_json, v1):
    admin = {"authorization": f"Bearer {args.token}"}
    client = grpcclient.InferenceServerClient(url=args.grpc_url)
    check("grpc: server live and ready", client.is_server_live() and client.is_server_ready())
    meta = client.get_server_metadata(as_json=True)
    check("grpc: server metadata", meta["name"] == "burnserve"
          and "binary_tensor_data" in meta["extensions"], meta)
    check("grpc: model ready (default and pinned)",
          client.is_model_ready("fashion") and client.is_model_ready("fashion", "1"))
    model = client.get_model_metadata("fashion", as_json=True)
    check("grpc: model metadata", model["inputs"][0]["name"] == "pixels"
          and [int(d) for d in model["inputs"][0]["shape"]] == [-1, 28, 28], model)
    config = client.get_model_config("fashion", as_json=True)["config"]
    check("grpc: model config", int(config["max_batch_size"]) == 64
          and [int(d) for d in config["input"][0]["dims"]] == [28, 28]
          and config["input"][0]["data_type"] == "TYPE_FP32", config)

    def infer(version=""):
        tensor = grpcclient.InferInput("pixels", list(images.shape), "FP32")
        tensor.set_data_from_numpy(images)
        outputs = [grpcclient.InferRequestedOutput("probabilities")]
        return client.infer("fashion", [tensor], model_version=version, outputs=outputs,
                            request_id="g-1").as_numpy("probabilities")

    got = infer()
    check("grpc: raw-contents infer equals HTTP JSON infer", got is not None
          and got.shape == (4, 10) and np.array_equal(got, as_json))
    check("grpc: pinned version 1 equals /v1 predict of version 1",
          np.allclose(infer("1"), v1, atol=1e-6))
    before = client.get_inference_statistics("fashion", "2", as_json=True)["model_stats"][0]
    infer()
    after = client.get_inference_statistics("fashion", "2", as_json=True)["model_stats"][0]
    served = int(after["inference_stats"]["success"]["count"]) - int(before["inference_stats"]["success"]["count"])
    check("grpc: statistics count one more success after one infer", served == 1, (before, after))

    def grpc_error(call, code):
        try:
            call()
        except Exception as err:  # noqa: BLE001 - tritonclient's exception carries the status
            status = getattr(err, "status", lambda: None)()
            return str(status).endswith(code), f"{status}: {err}"
        return False, "no error"

    tensor = grpcclient.InferInput("pixels", list(images.shape), "FP32")
    tensor.set_data_from_numpy(images)
    ok, text = grpc_error(lambda: client.infer("nope", [tensor]), "NOT_FOUND")
    check("grpc: unknown model is NOT_FOUND", ok, text)
    bad = grpcclient.InferInput("pixels", [1, 27, 27], "FP32")
    bad.set_data_from_numpy(np.zeros((1, 27, 27), dtype=np.float32))
    ok, text = grpc_error(lambda: client.infer("fashion", [bad]), "INVALID_ARGUMENT")
    check("grpc: wrong shape is INVALID_ARGUMENT", ok, text)
    ok, text = grpc_error(lambda: client.get_model_repository_index(), "UNAUTHENTICATED")
    check("grpc: repository index without the token is UNAUTHENTICATED", ok, text)
    index = client.get_model_repository_index(headers=admin, as_json=True)
    check("grpc: repository index lists fashion",
          any(m["name"] == "fashion" for m in index.get("models", [])), index)
    client.unload_model("fashion", headers=admin)
    check("grpc: unloaded, not ready", not client.is_model_ready("fashion"))
    client.load_model("fashion", headers=admin)
    check("grpc: loaded again, infer answers as before",
          client.is_model_ready("fashion") and np.array_equal(infer(), as_json))

    # grpc.health.v1.Health/Check with an empty request (all services): SERVING is field 1 = 1.
    channel = grpc.insecure_channel(args.grpc_url)
    check_health = channel.unary_unary("/grpc.health.v1.Health/Check",
                                       request_serializer=lambda b: b,
                                       response_deserializer=lambda b: b)
    answer = check_health(b"", timeout=10)
    check("grpc.health.v1 answers SERVING", answer == b"\x08\x01", answer)


def signature_arrays():
    """A request for the example signature multi-io: 2 items of 5 tokens."""
    rng = np.random.default_rng(5)
    return {
        "input_ids": rng.integers(-2**62, 2**62, size=(2, 5), dtype=np.int64),
        "attention_mask": rng.integers(0, 2, size=(2, 5)).astype(np.bool_),
        "scores": rng.standard_normal((2, 4)).astype(np.float32),
        "features": rng.standard_normal((2, 2)).astype(np.float16),
        "query": np.array([["héllo wörld".encode()], [b"ranking"]], dtype=np.object_),
    }


DATATYPES = {"input_ids": "INT64", "attention_mask": "BOOL", "scores": "FP32",
             "features": "FP16", "query": "BYTES"}


def check_signature(args):
    """multi-io (five inputs of five datatypes, five outputs) over HTTP JSON, HTTP binary and
    gRPC: every output equals its input exactly."""
    arrays = signature_arrays()
    client = httpclient.InferenceServerClient(url=args.url)
    model = client.get_model_metadata("multi-io")
    check("multi-io metadata: five typed inputs, -1 for the batch and variable dimensions",
          [(t["name"], t["datatype"], t["shape"]) for t in model["inputs"]]
          == [("input_ids", "INT64", [-1, -1]), ("attention_mask", "BOOL", [-1, -1]),
              ("scores", "FP32", [-1, 4]), ("features", "FP16", [-1, 2]),
              ("query", "BYTES", [-1, 1])], model["inputs"])
    config = client.get_model_config("multi-io")
    check("multi-io config: TYPE_INT64 [-1], TYPE_STRING [1], features optional",
          config["input"][0]["data_type"] == "TYPE_INT64" and config["input"][0]["dims"] == [-1]
          and config["input"][4]["data_type"] == "TYPE_STRING"
          and config["input"][3].get("optional") is True, config)

    def same(result, names):
        def equal(name):
            got = result.as_numpy(f"{name}_out")
            if got is None or got.shape != arrays[name].shape:
                return False
            if arrays[name].dtype == np.object_:
                # tritonclient reads JSON BYTES as str, binary ones as bytes.
                as_bytes = [g.encode() if isinstance(g, str) else g for g in got.flatten()]
                return as_bytes == list(arrays[name].flatten())
            return got.dtype == arrays[name].dtype and np.array_equal(got, arrays[name])
        return all(equal(n) for n in names)

    for binary in (False, True):
        inputs = []
        for name, array in arrays.items():
            tensor = httpclient.InferInput(name, list(array.shape), DATATYPES[name])
            # JSON has no FP16 numbers in tritonclient: features always go as binary.
            tensor.set_data_from_numpy(array, binary_data=binary or name == "features")
            inputs.append(tensor)
        outputs = [httpclient.InferRequestedOutput(f"{n}_out", binary_data=binary or n == "features")
                   for n in arrays]
        result = client.infer("multi-io", inputs, outputs=outputs)
        check(f"http multi-io infer ({'binary' if binary else 'JSON'}): every output equals its input",
              same(result, arrays), result.get_response())
    # Only some outputs, in the order asked; the optional input left out.
    inputs = []
    for name in ("query", "input_ids", "attention_mask", "scores"):
        tensor = httpclient.InferInput(name, list(arrays[name].shape), DATATYPES[name])
        tensor.set_data_from_numpy(arrays[name], binary_data=False)
        inputs.append(tensor)
    result = client.infer("multi-io", inputs,
                          outputs=[httpclient.InferRequestedOutput("query_out", binary_data=False),
                                   httpclient.InferRequestedOutput("scores_out", binary_data=True)])
    names = [o["name"] for o in result.get_response()["outputs"]]
    check("http multi-io: the outputs asked for, in order, without the optional input",
          names == ["query_out", "scores_out"] and same(result, ["query", "scores"]), names)
    bad = arrays["scores"].copy()
    bad[0, 1] = np.nan
    tensor = httpclient.InferInput("scores", list(bad.shape), "FP32")
    tensor.set_data_from_numpy(bad)
    ok, text = raises(lambda: client.infer("multi-io", inputs[:3] + [tensor]),
                      "input 'scores'", "not finite")
    check("http multi-io: NaN refused where the input opts in (finite = true)", ok, text)

    grpc_client = grpcclient.InferenceServerClient(url=args.grpc_url)
    inputs = []
    for name, array in arrays.items():
        tensor = grpcclient.InferInput(name, list(array.shape), DATATYPES[name])
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    outputs = [grpcclient.InferRequestedOutput(f"{n}_out") for n in arrays]
    result = grpc_client.infer("multi-io", inputs, outputs=outputs)
    check("grpc multi-io infer: every output equals its input", same(result, arrays))
    meta = grpc_client.get_model_metadata("multi-io", as_json=True)
    check("grpc multi-io metadata: five inputs, five outputs",
          len(meta["inputs"]) == 5 and len(meta["outputs"]) == 5
          and meta["inputs"][1]["datatype"] == "BOOL", meta)


if __name__ == "__main__":
    sys.exit(main())
