"""Triton's own HTTP client against burnserve (run by scripts/check-tritonclient.sh).

Every check compares real values: infer answers (JSON, binary, compressed, UINT8) against
burnserve's own /v1 predict of the same images, metadata against the bundled model.toml, the
repository extension by its effect on readiness and infer. Exits 1 naming each failed check.
"""

import argparse
import json
import sys
import urllib.request

import numpy as np
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

    print(f"tritonclient http: {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
