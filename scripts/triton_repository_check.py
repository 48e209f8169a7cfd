"""Triton's own HTTP and gRPC clients against burnserve serving a Triton model repository (run by
scripts/check-triton-repository.sh; the repository and the reference answers come from
scripts/triton_repository.py).

Over tritonclient.http and tritonclient.grpc: the repository index (states and reasons of each
model and version), readiness per version, the model config (fashion_cnn's full config.pbtxt,
fashion_mlp's auto-completed one), the model metadata, infer (default version = latest, pinned
versions, JSON and binary) against onnxruntime's outputs for the same inputs, top-k
classification with the labels file, and infer refused on the models that cannot serve.
Exits 1 naming each failed check.
"""

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

TOLERANCE = 1e-4
failures = []


def check(name, ok, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'} {name}" + (f": {detail}" if detail and not ok else ""))
    if not ok:
        failures.append(name)


def attempt(name, call):
    """call(), or None after a failed check naming the exception (a missing endpoint must fail
    its own checks, not end the run)."""
    try:
        return call()
    except Exception as err:  # noqa: BLE001 - any error is this check's failure
        check(name, False, f"{type(err).__name__}: {err}")
        return None


def camel(snake):
    head, *rest = snake.split("_")
    return head + "".join(word.title() for word in rest)


def lookup(value, path):
    """value at path (keys and list indices) in a config dict; snake_case keys, or camelCase
    as protobuf's JSON writes them without preserving_proto_field_name."""
    for step in path:
        if isinstance(step, int):
            if not isinstance(value, list) or step >= len(value):
                return None
            value = value[step]
        elif isinstance(value, dict):
            value = value.get(step, value.get(camel(step)))
        else:
            return None
    return value


def same_value(got, want):
    """got equals want, reading protobuf JSON's int64-as-string numbers as numbers."""
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(
            same_value(g, w) for g, w in zip(got, want))
    if isinstance(want, int) and not isinstance(want, bool):
        try:
            return int(got) == want
        except (TypeError, ValueError):
            return False
    return got == want


def ints(values):
    try:
        return [int(v) for v in values]
    except (TypeError, ValueError):
        return None


def mentions_line(text, line):
    return re.search(rf"(?<!\d){line}(?!\d)", text) is not None


def ask(name, call, want):
    """A check that call() answers want; an exception is its failure."""
    try:
        got = call()
    except Exception as err:  # noqa: BLE001 - any error is this check's failure
        check(name, False, f"{type(err).__name__}: {err}")
        return
    check(name, got == want, got)


def error_of(call):
    """(raised, text): whether call() raised tritonclient's exception, and its message."""
    try:
        call()
    except InferenceServerException as err:
        status = err.status() if hasattr(err, "status") else None
        return True, f"{status}: {err}" if status else str(err)
    except Exception as err:  # noqa: BLE001 - not the server's answer (e.g. no connection)
        return False, f"{type(err).__name__}: {err}"
    return False, "no error"


class Reference:
    def __init__(self, directory):
        directory = Path(directory)
        self.description = json.loads((directory / "models.json").read_text())
        self.models = self.description["servable"]
        self.unservable = self.description["unservable"]
        self.inputs = {n: np.load(directory / m["input_file"]) for n, m in self.models.items()}
        self.outputs = {n: np.load(directory / m["output_file"]) for n, m in self.models.items()}


# ---------------------------------------------------------------------------------------------
# What both protocols answer, once in plain dicts


def check_index(proto, entries, ref):
    """entries: [{name, version, state, reason}] with "" for a missing field."""
    listed = {(e["name"], e["version"]): e for e in entries}
    names = sorted({e["name"] for e in entries})
    expected_names = sorted({e["name"] for e in ref.description["index"]})
    check(f"{proto}: repository index lists exactly the repository's models {expected_names}",
          names == expected_names, names)
    for want in ref.description["index"]:
        name, version, state = want["name"], want.get("version"), want["state"]
        if version is not None:
            entry = listed.get((name, version))
            label = f"{proto}: index {name} version {version} is {state}"
            if entry is None:
                check(label + (" (or not listed)" if want.get("absent_ok") else ""),
                      bool(want.get("absent_ok")), f"not listed: {entries}")
                continue
            check(label, entry["state"] == state, entry)
        else:
            # The whole model: its entries (one without a version, or one per version) all
            # in this state, none READY, with the reason.
            mine = [e for e in entries if e["name"] == name]
            label = f"{proto}: index {name} is {state}"
            check(label, bool(mine) and all(e["state"] == state for e in mine), mine)
            reasons = " ".join(e["reason"] for e in mine)
            words = want.get("reason_contains", [])
            line = want.get("reason_line")
            check(f"{proto}: index {name} reason names {words}"
                  + (f" and line {line}" if line else ""),
                  all(w in reasons for w in words) and (line is None or mentions_line(reasons, line)),
                  mine)


def check_config(proto, name, config, ref):
    model = ref.models[name]
    if config is None:
        return
    inputs, outputs = lookup(config, ["input"]) or [], lookup(config, ["output"]) or []
    check(f"{proto}: {name} config has one input {model['input']} TYPE_FP32 {model['input_dims']}",
          len(inputs) == 1 and inputs[0].get("name") == model["input"]
          and lookup(inputs[0], ["data_type"]) == "TYPE_FP32"
          and ints(inputs[0].get("dims", [])) == model["input_dims"], inputs)
    check(f"{proto}: {name} config has one output {model['output']} TYPE_FP32 {model['output_dims']}",
          len(outputs) == 1 and outputs[0].get("name") == model["output"]
          and lookup(outputs[0], ["data_type"]) == "TYPE_FP32"
          and ints(outputs[0].get("dims", [])) == model["output_dims"], outputs)
    if model["max_batch_size"] is None:
        got = lookup(config, ["max_batch_size"])
        check(f"{proto}: {name} auto-completed config has max_batch_size > 0",
              (ints([got]) or [0])[0] > 0 if got is not None else False, config)
    for path, want in model["expected_config"]:
        got = lookup(config, path)
        where = ".".join(str(p) for p in path)
        check(f"{proto}: {name} config {where} = {want!r}", same_value(got, want),
              f"got {got!r} in {config}")


def check_metadata(proto, name, meta, ref):
    model = ref.models[name]
    if meta is None:
        return

    def tensors(key):
        return [(t.get("name"), t.get("datatype"), ints(t.get("shape", []))) for t in meta.get(key, [])]

    check(f"{proto}: {name} metadata inputs [{model['input']} FP32 [-1, ...{model['input_dims']}]]",
          tensors("inputs") == [(model["input"], "FP32", [-1] + model["input_dims"])],
          meta.get("inputs"))
    check(f"{proto}: {name} metadata outputs [{model['output']} FP32 [-1, ...{model['output_dims']}]]",
          tensors("outputs") == [(model["output"], "FP32", [-1] + model["output_dims"])],
          meta.get("outputs"))
    check(f"{proto}: {name} metadata platform {model['platform']}",
          meta.get("platform") == model["platform"], meta.get("platform"))
    versions = sorted(meta.get("versions", []))
    check(f"{proto}: {name} metadata versions are the ready ones {model['ready_versions']}",
          versions == sorted(model["ready_versions"]), versions)


def check_outputs(label, got, want, version, want_version):
    diff = float(np.max(np.abs(got - want))) if got is not None and got.shape == want.shape else None
    check(f"{label}: shape {list(want.shape)}, within {TOLERANCE} of onnxruntime",
          diff is not None and got.dtype == np.float32 and diff <= TOLERANCE,
          f"shape {None if got is None else got.shape}, dtype {None if got is None else got.dtype}, "
          f"max abs diff {diff}")
    check(f"{label}: answered by version {want_version}", version == want_version, version)


def check_classes(label, got, reference, labels, count):
    """got: [batch, count] BYTES "value:index:label" (Triton's classification extension)."""
    if got is None or got.shape != (reference.shape[0], count):
        check(f"{label}: top-{count} classes", False,
              f"shape {None if got is None else got.shape}")
        return
    problems = []
    for row, entries in enumerate(got):
        cut = np.sort(reference[row])[-count]
        previous, seen = np.inf, set()
        for entry in entries:
            text = entry.decode() if isinstance(entry, bytes) else str(entry)
            parts = text.split(":", 2)
            try:
                value, index = float(parts[0]), int(parts[1])
                label_text = parts[2] if len(parts) == 3 else None
            except (ValueError, IndexError):
                problems.append(f"row {row}: {text!r} is not value:index:label")
                continue
            if not 0 <= index < reference.shape[1] or index in seen:
                problems.append(f"row {row}: index {index}")
                continue
            seen.add(index)
            if abs(value - reference[row, index]) > TOLERANCE or value > previous + TOLERANCE:
                problems.append(f"row {row}: {text!r} vs {reference[row, index]} (order or value)")
            if reference[row, index] < cut - 2 * TOLERANCE:
                problems.append(f"row {row}: {text!r} is not among the top {count}")
            if label_text != labels[index]:
                problems.append(f"row {row}: {text!r} label, want {labels[index]!r}")
            previous = value
    check(f"{label}: top-{count} classes value:index:label from labels.txt", not problems,
          problems[:5])


# ---------------------------------------------------------------------------------------------
# HTTP


def check_http(args, ref, headers, classification):
    proto = "http"
    client = httpclient.InferenceServerClient(url=args.url, network_timeout=60.0)
    ask("http: server live", client.is_server_live, True)

    index = attempt("http: repository index", lambda: client.get_model_repository_index(headers=headers))
    if index is not None:
        entries = [{"name": e.get("name", ""), "version": str(e.get("version", "") or ""),
                    "state": e.get("state", ""), "reason": e.get("reason", "")} for e in index]
        check_index(proto, entries, ref)

    check_ready(proto, client, ref)

    for name in ref.models:
        config = attempt(f"http: {name} config", lambda: client.get_model_config(name))
        check_config(proto, name, config, ref)
        meta = attempt(f"http: {name} metadata", lambda: client.get_model_metadata(name))
        check_metadata(proto, name, meta, ref)

    def infer(name, version, binary, class_count=0):
        model = ref.models[name]
        batch = ref.inputs[name]
        tensor = httpclient.InferInput(model["input"], list(batch.shape), "FP32")
        tensor.set_data_from_numpy(batch, binary_data=binary)
        output = httpclient.InferRequestedOutput(model["output"], binary_data=binary,
                                                 class_count=class_count)
        result = client.infer(name, [tensor], model_version=version, outputs=[output])
        return result.as_numpy(model["output"]), str(result.get_response().get("model_version", ""))

    for name, model in ref.models.items():
        versions = [("", model["default_version"])] + [(v, v) for v in model["ready_versions"]
                                                      if v != model["default_version"]]
        for version, answered_by in versions:
            for binary in (False, True):
                label = (f"http: infer {name}" + (f" version {version}" if version else " (default)")
                         + (" binary" if binary else " JSON"))
                answer = attempt(label, lambda: infer(name, version, binary))
                if answer is not None:
                    check_outputs(label, answer[0], ref.outputs[name], answer[1], answered_by)
        for version in model["unready_versions"]:
            raised, text = error_of(lambda: infer(name, version, True))
            check(f"http: infer {name} version {version} (not loaded) is an error",
                  raised and name in text, text)

    if classification:
        name = "fashion_cnn"
        for binary in (False, True):
            label = f"http: infer {name} class_count=3 ({'binary' if binary else 'JSON'})"
            answer = attempt(label, lambda: infer(name, "", binary, class_count=3))
            if answer is not None:
                check_classes(label, answer[0], ref.outputs[name], ref.models[name]["labels"], 3)

    for name, model in ref.unservable.items():
        batch = np.zeros([1] + model["input_dims"], dtype=np.float32)
        tensor = httpclient.InferInput(model["input"], list(batch.shape), "FP32")
        tensor.set_data_from_numpy(batch, binary_data=True)
        raised, text = error_of(lambda: client.infer(name, [tensor]))
        check(f"http: infer {name} (unavailable) is an error naming it", raised and name in text, text)
    client.close()


def check_ready(proto, client, ref):
    for name, model in ref.models.items():
        for version in model["ready_versions"]:
            ask(f"{proto}: {name} version {version} ready",
                lambda: client.is_model_ready(name, version), True)
        for version in model["unready_versions"]:
            ask(f"{proto}: {name} version {version} not ready",
                lambda: client.is_model_ready(name, version), False)
        ask(f"{proto}: {name} (no version) ready", lambda: client.is_model_ready(name), True)
    for name in ref.unservable:
        ask(f"{proto}: {name} not ready", lambda: client.is_model_ready(name), False)


# ---------------------------------------------------------------------------------------------
# gRPC


def check_grpc(args, ref, headers, classification):
    proto = "grpc"
    client = grpcclient.InferenceServerClient(url=args.grpc_url)
    ask("grpc: server live", client.is_server_live, True)

    index = attempt("grpc: repository index",
                    lambda: client.get_model_repository_index(headers=headers, as_json=True))
    if index is not None:
        # proto3 JSON leaves out empty strings: a model-wide entry has no "version".
        entries = [{"name": e.get("name", ""), "version": str(e.get("version", "") or ""),
                    "state": e.get("state", ""), "reason": e.get("reason", "")}
                   for e in index.get("models", [])]
        check_index(proto, entries, ref)

    check_ready(proto, client, ref)

    for name in ref.models:
        answer = attempt(f"grpc: {name} config", lambda: client.get_model_config(name, as_json=True))
        check_config(proto, name, None if answer is None else answer.get("config", {}), ref)
        meta = attempt(f"grpc: {name} metadata", lambda: client.get_model_metadata(name, as_json=True))
        check_metadata(proto, name, meta, ref)

    def infer(name, version, class_count=0):
        model = ref.models[name]
        batch = ref.inputs[name]
        tensor = grpcclient.InferInput(model["input"], list(batch.shape), "FP32")
        tensor.set_data_from_numpy(batch)
        output = grpcclient.InferRequestedOutput(model["output"], class_count=class_count)
        result = client.infer(name, [tensor], model_version=version, outputs=[output],
                              client_timeout=60.0)
        return result.as_numpy(model["output"]), result.get_response().model_version

    for name, model in ref.models.items():
        versions = [("", model["default_version"])] + [(v, v) for v in model["ready_versions"]
                                                      if v != model["default_version"]]
        for version, answered_by in versions:
            label = f"grpc: infer {name}" + (f" version {version}" if version else " (default)")
            answer = attempt(label, lambda: infer(name, version))
            if answer is not None:
                check_outputs(label, answer[0], ref.outputs[name], answer[1], answered_by)
        for version in model["unready_versions"]:
            raised, text = error_of(lambda: infer(name, version))
            check(f"grpc: infer {name} version {version} (not loaded) is an error",
                  raised and name in text, text)

    if classification:
        name = "fashion_cnn"
        label = f"grpc: infer {name} class_count=3"
        answer = attempt(label, lambda: infer(name, "", class_count=3))
        if answer is not None:
            check_classes(label, answer[0], ref.outputs[name], ref.models[name]["labels"], 3)

    for name, model in ref.unservable.items():
        batch = np.zeros([1] + model["input_dims"], dtype=np.float32)
        tensor = grpcclient.InferInput(model["input"], list(batch.shape), "FP32")
        tensor.set_data_from_numpy(batch)
        raised, text = error_of(lambda: client.infer(name, [tensor], client_timeout=60.0))
        check(f"grpc: infer {name} (unavailable) is an error naming it", raised and name in text, text)
    client.close()


def main():
    args = argparse.ArgumentParser()
    args.add_argument("--url", required=True, help="HTTP HOST:PORT")
    args.add_argument("--grpc-url", required=True, help="gRPC HOST:PORT")
    args.add_argument("--reference", required=True, help="OUT_DIR/reference of triton_repository.py")
    args.add_argument("--token", default="", help="admin token, sent with the repository index")
    args.add_argument("--skip-classification", action="store_true",
                      help="do not ask for class_count (Triton's classification extension)")
    args = args.parse_args()
    ref = Reference(args.reference)
    classification = not args.skip_classification
    check_http(args, ref, {"Authorization": f"Bearer {args.token}"} if args.token else None,
               classification)
    check_grpc(args, ref, {"authorization": f"Bearer {args.token}"} if args.token else None,
               classification)
    print(f"triton repository, http and grpc: {len(failures)} failed"
          + (": " + ", ".join(failures) if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
