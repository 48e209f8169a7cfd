#!/usr/bin/env python3
"""End-to-end check of burnserve's metrics through a real Prometheus (standard library only).

Run by scripts/e2e-prometheus.sh, which starts burnserve (tenants alpha and beta; beta's quota is
a burst of BETA_BURST and next to no refill) and a Prometheus scraping it every second with
deploy/prometheus's recording and alerting rules. This script:

  1. waits for Prometheus's first scrapes and checks the series that exist at 0 before traffic;
  2. sends known traffic and records every answer (status, error_type, latency):
       success   60 x alpha, 30 x beta                        -> 200 (default version)
       throttled 5 x beta past its burst                       -> 429 rate_limited (not counted)
       busy      5 x alpha, timeout_ms 1, sent with the above  -> 429 overloaded (counted)
       shape     10 x alpha, 100 floats instead of 28x28       -> 422 invalid_input (counted)
       ragged    3 x alpha, ragged nested arrays               -> 400 (body not parsed: not counted)
       unknown   5 x alpha, model "no-such-model"              -> 404 (model="unknown")
       unauth    2 x no key, 1 x wrong key                     -> 401 (not counted)
       deadline  alpha, pinned version 1, timeout_ms 0          -> 504 from the executor
     The `deadline` requests are how an executor timeout is forced: a deadline of 0 ms cannot be
     met, so admission refuses it (429 overloaded) unless the version's cost estimate is stale
     (no pass for 2 s), when one request per 2 s goes through as a probe; the executor then finds
     it past its deadline and answers 504, counting executor_timeouts_total. Version 1 gets no
     other traffic, so its estimate is stale; the script repeats (2.1 s apart) until it has
     DEADLINE_504S 504s, and counts whatever came back.
  3. computes, from the answers, what burnserve must have counted (README "Metrics": a request
     is counted once it reaches a model, or the unknown-model path; body parse failures, 401s
     and rate_limited refusals before the handler are not), and checks it through
     /api/v1/query: raw counters exactly; rate()/increase() ratios within a tolerance; the p99;
     the recording rules; the alerts (BurnserveExecutorTimeouts firing, nothing else firing);
  4. runs `promtool check metrics` on burnserve's /metrics text;
  5. prints a summary and writes it as JSON (--out).

Exit status: 0 when every check passed, 1 otherwise (2 for a usage or set-up error).
"""

import argparse
import json
import math
import os
import random
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor

SUCCESS_ALPHA = 60
SUCCESS_BETA = 30
THROTTLED_BETA = 5
BUSY_ALPHA = 5
BAD_SHAPE_ALPHA = 10
RAGGED_ALPHA = 3
UNKNOWN_ALPHA = 5
DEADLINE_504S = 2
DEADLINE_MAX_TRIES = 8
UNKNOWN_MODEL = "no-such-model"
PREDICT = "/v1/models/{model}/predict"
PREDICT_VERSION = "/v1/models/{model}/versions/{version}/predict"
# Error types a request can end with and still be counted in inference_requests_total.
COUNTED_ERRORS = {
    "invalid_input", "model_not_found", "overloaded", "not_ready", "shutting_down", "timeout",
    "inference_error",
}
# The error series that exist at 0 per version and tenant from the version's load on.
VERSION_ERRORS = ["invalid_input", "overloaded", "not_ready", "shutting_down", "timeout",
                  "inference_error"]
RATIO_TOLERANCE = 0.01  # absolute, on ratios in 0..1
INCREASE_RATIO_TOLERANCE = 0.02  # relative, on alpha/beta of increase()


class Checks:
    def __init__(self):
        self.items = []

    def check(self, name, ok, detail, known_issue=False):
        self.items.append({"name": name, "ok": bool(ok), "detail": detail,
                           "known_issue": known_issue})
        mark = "ok  " if ok else ("KNOWN-ISSUE" if known_issue else "FAIL")
        print(f"[{mark}] {name}: {detail}", flush=True)
        return ok

    def failed(self, strict):
        return [c for c in self.items if not c["ok"] and (strict or not c["known_issue"])]


def http(method, url, body=None, headers=None, timeout=10.0):
    """(status, headers, body bytes, seconds); HTTP errors are answers, not exceptions."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    start = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            data = resp.read()
            return resp.status, dict(resp.headers), data, time.monotonic() - start
    except urllib.error.HTTPError as err:
        data = err.read()
        return err.code, dict(err.headers), data, time.monotonic() - start


class Prom:
    def __init__(self, base):
        self.base = base.rstrip("/")

    def api(self, path, params=None):
        url = self.base + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        status, _, data, _ = http("GET", url, timeout=10)
        if status != 200:
            raise RuntimeError(f"{url}: HTTP {status}: {data[:300]!r}")
        doc = json.loads(data)
        if doc.get("status") != "success":
            raise RuntimeError(f"{url}: {doc}")
        return doc["data"]

    def query(self, expr):
        """The instant vector as a list of (labels, float value)."""
        data = self.api("/api/v1/query", {"query": expr})
        if data["resultType"] == "scalar":
            return [({}, float(data["result"][1]))]
        return [(r["metric"], float(r["value"][1])) for r in data["result"]]

    def scalar(self, expr):
        """The single value of `expr`, or None when the result is empty."""
        result = self.query(expr)
        if not result:
            return None
        if len(result) != 1:
            raise RuntimeError(f"{expr}: {len(result)} series, expected 1")
        return result[0][1]

    def by(self, expr, *labels):
        return {tuple(m.get(l, "") for l in labels): v for m, v in self.query(expr)}

    def alerts(self):
        return self.api("/api/v1/alerts")["alerts"]


def wait_for(what, fn, timeout, interval=0.5):
    """Polls fn() until it returns a truthy value; returns the last value (falsy on timeout)."""
    end = time.monotonic() + timeout
    value = None
    while True:
        try:
            value = fn()
        except Exception as err:  # noqa: BLE001 - retried until the timeout
            value = None
            last_err = err
        else:
            last_err = None
        if value or time.monotonic() >= end:
            if not value:
                print(f"timed out after {timeout}s waiting for {what}"
                      + (f" (last error: {last_err})" if last_err else ""), flush=True)
            return value
        time.sleep(interval)


def image(rng):
    return [round(rng.random(), 4) for _ in range(784)]


class Client:
    def __init__(self, base, keys):
        self.base = base.rstrip("/")
        self.keys = keys  # tenant -> key
        self.records = []

    def send(self, category, tenant, path, payload=None, raw=None, key=None):
        headers = {"Content-Type": "application/json"}
        if key is None and tenant in self.keys:
            key = self.keys[tenant]
        if key:
            headers["Authorization"] = f"Bearer {key}"
        body = raw if raw is not None else json.dumps(payload).encode()
        status, _, data, took = http("POST", self.base + path, body, headers)
        try:
            doc = json.loads(data)
        except ValueError:
            doc = {}
        record = {
            "category": category,
            "tenant": tenant,
            "path": path,
            "endpoint": path_pattern(path),
            "pinned_version": pinned_version(path),
            "model": path.split("/")[3],
            "status": status,
            "error_type": doc.get("error_type"),
            "served_version": doc.get("version") if status == 200 else None,
            "seconds": took,
        }
        self.records.append(record)
        return record


def path_pattern(path):
    parts = path.split("/")
    if "versions" in parts:
        return PREDICT_VERSION
    return PREDICT


def pinned_version(path):
    parts = path.split("/")
    return parts[parts.index("versions") + 1] if "versions" in parts else None


def counted(record):
    """Whether burnserve counts this answer in inference_requests_total (README "Metrics")."""
    if record["status"] == 200:
        return True
    if record["error_type"] not in COUNTED_ERRORS:
        return False  # 401 unauthorized, 429 rate_limited: refused before the handler
    if record["status"] == 400:
        return False  # the body could not be parsed: it never reached a model
    return True


def labels_of(record, default_version):
    if record["error_type"] == "model_not_found":
        return "unknown", "unknown"
    version = record["served_version"] or record["pinned_version"] or default_version
    return record["model"], version


def expectations(records, default_version):
    requests, errors, latency = {}, {}, {}
    http_counts = {}
    throttled = {}
    for r in records:
        key = (r["endpoint"], str(r["status"]))
        http_counts[key] = http_counts.get(key, 0) + 1
        if r["error_type"] == "rate_limited":
            throttled[r["tenant"]] = throttled.get(r["tenant"], 0) + 1
        if not counted(r):
            continue
        model, version = labels_of(r, default_version)
        mvt = (model, version, r["tenant"])
        requests[mvt] = requests.get(mvt, 0) + 1
        if r["status"] == 200:
            latency[mvt] = latency.get(mvt, 0) + 1
        else:
            k = (model, version, r["error_type"], r["tenant"])
            errors[k] = errors.get(k, 0) + 1
    return requests, errors, latency, http_counts, throttled


def nonzero(d):
    return {k: v for k, v in d.items() if v != 0}


def as_int_map(d):
    return {k: int(round(v)) for k, v in d.items()}


def fmt_map(d):
    return {"/".join(k): v for k, v in sorted(d.items())}


def run(args):
    checks = Checks()
    prom = Prom(args.prometheus)
    keys = {"alpha": args.alpha_key, "beta": args.beta_key}
    client = Client(args.burnserve, keys)
    summary = {"burnserve_url": args.burnserve, "prometheus_url": args.prometheus}
    started = time.monotonic()

    # ---- 1. before traffic ------------------------------------------------------------------
    first = wait_for(
        "Prometheus to scrape burnserve (up == 1 and inference_requests_total present)",
        lambda: prom.scalar('up{job="burnserve"}') == 1
        and prom.scalar("count(inference_requests_total)"),
        timeout=20)
    checks.check("prometheus scrapes burnserve", first,
                 'up{job="burnserve"} == 1 and inference_requests_total present')
    if not first:
        return checks, summary, client
    pre = {
        "sum(inference_requests_total)": prom.scalar("sum(inference_requests_total)"),
        "count(inference_requests_total)": prom.scalar("count(inference_requests_total)"),
        "sum(inference_errors_total)": prom.scalar("sum(inference_errors_total)"),
        "count(inference_errors_total)": prom.scalar("count(inference_errors_total)"),
        "sum(inference_latency_seconds_count)": prom.scalar(
            "sum(inference_latency_seconds_count)"),
        "sum(executor_timeouts_total)": prom.scalar("sum(executor_timeouts_total)"),
        "count(model_loaded == 1)": prom.scalar("count(model_loaded == 1)"),
    }
    summary["before_traffic"] = pre
    n_versions, n_tenants = len(args.versions), 2
    checks.check("requests at 0 before traffic (series present, not empty)",
                 pre["sum(inference_requests_total)"] == 0,
                 f"sum(inference_requests_total) = {pre['sum(inference_requests_total)']}")
    # Per (version, tenant), plus the `unknown` model's per tenant (requests, and its
    # model_not_found errors), all from start-up.
    checks.check("request series pre-created per version and tenant, and for unknown models",
                 pre["count(inference_requests_total)"] == (n_versions + 1) * n_tenants,
                 f"count = {pre['count(inference_requests_total)']}, "
                 f"expected ({n_versions} versions + unknown) x {n_tenants} tenants")
    expected_errors = n_versions * n_tenants * len(VERSION_ERRORS) + n_tenants
    checks.check("errors at 0 before traffic",
                 pre["sum(inference_errors_total)"] == 0
                 and pre["count(inference_errors_total)"] == expected_errors,
                 f"sum = {pre['sum(inference_errors_total)']}, "
                 f"count = {pre['count(inference_errors_total)']} (expected "
                 f"{expected_errors})")
    checks.check("latency histogram and executor timeouts at 0 before traffic",
                 pre["sum(inference_latency_seconds_count)"] == 0
                 and pre["sum(executor_timeouts_total)"] == 0,
                 f"latency count = {pre['sum(inference_latency_seconds_count)']}, "
                 f"executor timeouts = {pre['sum(executor_timeouts_total)']}")
    checks.check("every configured version loaded",
                 pre["count(model_loaded == 1)"] == n_versions,
                 f"count(model_loaded == 1) = {pre['count(model_loaded == 1)']}")
    firing_before = [a["labels"]["alertname"] for a in prom.alerts() if a["state"] == "firing"]
    checks.check("no alert firing before traffic", not firing_before, f"firing: {firing_before}")

    # ---- 2. traffic -------------------------------------------------------------------------
    rng = random.Random(42)
    model = args.model
    predict = PREDICT.format(model=model)
    jobs = []
    for i in range(max(SUCCESS_ALPHA, SUCCESS_BETA + THROTTLED_BETA)):
        if i < SUCCESS_ALPHA:
            jobs.append(("success", "alpha", predict, {"inputs": image(rng)}))
        if i < SUCCESS_BETA + THROTTLED_BETA:
            jobs.append(("success-or-throttled", "beta", predict, {"inputs": image(rng)}))
        if i % 12 == 6 and i // 12 < BUSY_ALPHA:
            jobs.append(("busy", "alpha", predict, {"inputs": image(rng), "timeout_ms": 1}))
    traffic_start = time.time()
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda j: client.send(j[0], j[1], j[2], j[3]), jobs))
    # Late busy requests, right after the load: the version measured a pass moments ago, so a
    # 1 ms deadline is refused by the estimate (no probe).
    for _ in range(BUSY_ALPHA - sum(1 for j in jobs if j[0] == "busy")):
        client.send("busy", "alpha", predict, {"inputs": image(rng), "timeout_ms": 1})
    for _ in range(BAD_SHAPE_ALPHA):
        client.send("bad-shape", "alpha", predict,
                    {"inputs": [round(rng.random(), 4) for _ in range(100)]})
    for _ in range(RAGGED_ALPHA):
        client.send("ragged", "alpha", predict, {"inputs": [[0.5, 0.5], [0.5]]})
    for _ in range(UNKNOWN_ALPHA):
        client.send("unknown-model", "alpha", PREDICT.format(model=UNKNOWN_MODEL),
                    {"inputs": image(rng)})
    client.send("unauthorized", "none", predict, {"inputs": image(rng)}, key="")
    client.send("unauthorized", "none", predict, {"inputs": image(rng)}, key="")
    client.send("unauthorized", "none", predict, {"inputs": image(rng)},
                key="not-a-tenant-key-0123456789")
    # Forced executor timeouts on the otherwise idle version.
    deadline_path = PREDICT_VERSION.format(model=model, version=args.timeout_version)
    got_504 = 0
    for attempt in range(DEADLINE_MAX_TRIES):
        r = client.send("deadline", "alpha", deadline_path,
                        {"inputs": image(rng), "timeout_ms": 0})
        if r["status"] == 504:
            got_504 += 1
            if got_504 >= DEADLINE_504S:
                break
            # Right away: the probe slot is taken, so this one is refused by the estimate.
            client.send("deadline", "alpha", deadline_path,
                        {"inputs": image(rng), "timeout_ms": 0})
        time.sleep(2.1)
    traffic_end = time.time()
    records = client.records

    # What came back, per category.
    by_category = {}
    for r in records:
        key = f"{r['status']} {r['error_type'] or 'ok'}"
        by_category.setdefault(r["category"], {}).setdefault(key, 0)
        by_category[r["category"]][key] += 1
    summary["sent"] = {c: sum(v.values()) for c, v in by_category.items()}
    summary["statuses"] = by_category
    summary["traffic_seconds"] = round(traffic_end - traffic_start, 3)
    print("sent / answered:", json.dumps(by_category, sort_keys=True), flush=True)

    def statuses(category):
        return by_category.get(category, {})

    checks.check("success: 60 alpha + 30 beta answered 200",
                 sum(1 for r in records if r["category"] == "success" and r["status"] == 200)
                 == SUCCESS_ALPHA
                 and statuses("success-or-throttled").get("200 ok") == SUCCESS_BETA,
                 f"alpha {statuses('success')}, beta {statuses('success-or-throttled')}")
    checks.check("beta past its burst: 429 rate_limited",
                 statuses("success-or-throttled").get("429 rate_limited") == THROTTLED_BETA,
                 f"{statuses('success-or-throttled')}")
    checks.check("busy, timeout_ms 1: 429 overloaded",
                 statuses("busy") == {"429 overloaded": BUSY_ALPHA}, f"{statuses('busy')}")
    checks.check("bad shape: 422 invalid_input",
                 statuses("bad-shape") == {"422 invalid_input": BAD_SHAPE_ALPHA},
                 f"{statuses('bad-shape')}")
    checks.check("ragged body: 400 invalid_input",
                 statuses("ragged") == {"400 invalid_input": RAGGED_ALPHA},
                 f"{statuses('ragged')}")
    checks.check("unknown model: 404 model_not_found",
                 statuses("unknown-model") == {"404 model_not_found": UNKNOWN_ALPHA},
                 f"{statuses('unknown-model')}")
    checks.check("no key / wrong key: 401 unauthorized",
                 statuses("unauthorized") == {"401 unauthorized": 3},
                 f"{statuses('unauthorized')}")
    deadline = statuses("deadline")
    checks.check(f"timeout_ms 0 on version {args.timeout_version}: {DEADLINE_504S} x 504",
                 deadline.get("504 timeout", 0) == DEADLINE_504S
                 and set(deadline) <= {"504 timeout", "429 overloaded"},
                 f"{deadline}")

    # ---- 3. expectations --------------------------------------------------------------------
    exp_req, exp_err, exp_lat, exp_http, exp_throttled = expectations(
        records, args.default_version)
    total_requests = sum(exp_req.values())
    total_errors = sum(exp_err.values())
    fashion_req = sum(v for k, v in exp_req.items() if k[0] == model)
    fashion_err = sum(v for k, v in exp_err.items() if k[0] == model)
    per_tenant = {}
    per_tenant_fashion = {}
    for (m, _, t), v in exp_req.items():
        per_tenant[t] = per_tenant.get(t, 0) + v
        if m == model:
            per_tenant_fashion[t] = per_tenant_fashion.get(t, 0) + v
    exp_timeouts = sum(1 for r in records if r["category"] == "deadline" and r["status"] == 504)
    ratio_all = total_errors / total_requests
    ratio_fashion = fashion_err / fashion_req
    ver_ratio = {}
    for v in args.versions:
        req = sum(n for k, n in exp_req.items() if k[0] == model and k[1] == v)
        err = sum(n for k, n in exp_err.items() if k[0] == model and k[1] == v)
        ver_ratio[v] = err / req if req else None
    success_seconds = [r["seconds"] for r in records if r["status"] == 200]
    expected = {
        "sum(inference_requests_total)": total_requests,
        "sum(inference_errors_total)": total_errors,
        "sum(inference_latency_seconds_count)": sum(exp_lat.values()),
        "sum(executor_timeouts_total)": exp_timeouts,
        "requests by model/version/tenant": fmt_map(exp_req),
        "errors by model/version/error_type/tenant": fmt_map(exp_err),
        "requests by tenant": per_tenant,
        "tenant_throttled_total rate": exp_throttled,
        "error ratio, all requests": ratio_all,
        f"error ratio, model {model}": ratio_fashion,
        "error ratio by version": ver_ratio,
        "not counted (400 body, 401, 429 rate_limited)": sum(1 for r in records
                                                           if not counted(r)),
    }
    summary["expected"] = expected
    print("expected:", json.dumps(expected, sort_keys=True), flush=True)

    # ---- 4. what Prometheus saw -------------------------------------------------------------
    # Wait until a scrape after the last request is in: the raw counters only grow, so equality
    # with the totals means every answer has been scraped.
    def scraped():
        return (prom.scalar("sum(inference_requests_total)") == total_requests
                and prom.scalar("sum(executor_timeouts_total)") == exp_timeouts
                and prom.scalar("sum(inference_errors_total)") == total_errors
                and prom.scalar("sum(tenant_throttled_total)") == sum(exp_throttled.values()))
    wait_for("Prometheus to scrape the final counters", scraped, timeout=20)
    time.sleep(args.settle)  # a couple more scrapes and rule evaluations

    got = {}
    got["sum(inference_requests_total)"] = prom.scalar("sum(inference_requests_total)")
    checks.check("sum(inference_requests_total) = requests that reached a model",
                 got["sum(inference_requests_total)"] == total_requests,
                 f"{got['sum(inference_requests_total)']} vs expected {total_requests}")
    got_req = nonzero(as_int_map(prom.by("inference_requests_total", "model", "version",
                                         "tenant")))
    got["requests by model/version/tenant"] = fmt_map(got_req)
    checks.check("inference_requests_total by model, version, tenant (exact)",
                 got_req == exp_req, f"{fmt_map(got_req)} vs expected {fmt_map(exp_req)}")
    got_err = nonzero(as_int_map(prom.by("inference_errors_total", "model", "version",
                                         "error_type", "tenant")))
    got["errors by model/version/error_type/tenant"] = fmt_map(got_err)
    checks.check("inference_errors_total by model, version, error_type, tenant (exact)",
                 got_err == exp_err, f"{fmt_map(got_err)} vs expected {fmt_map(exp_err)}")
    got_lat = nonzero(as_int_map(prom.by("inference_latency_seconds_count", "model", "version",
                                         "tenant")))
    checks.check("inference_latency_seconds_count = 200 answers, by model, version, tenant",
                 got_lat == exp_lat, f"{fmt_map(got_lat)} vs expected {fmt_map(exp_lat)}")
    got_tenant = as_int_map(prom.by("sum by (tenant) (inference_requests_total)", "tenant"))
    got_tenant = {k[0]: v for k, v in got_tenant.items()}
    got["sum by (tenant) (inference_requests_total)"] = got_tenant
    checks.check("sum by (tenant) (inference_requests_total) (exact; alpha > beta)",
                 got_tenant == per_tenant and got_tenant.get("alpha", 0)
                 > got_tenant.get("beta", 0),
                 f"{got_tenant} vs expected {per_tenant}")
    got_throttled = nonzero(as_int_map(prom.by('tenant_throttled_total{reason="rate"}',
                                               "tenant")))
    got_throttled = {k[0]: v for k, v in got_throttled.items()}
    checks.check("tenant_throttled_total{reason=\"rate\"} = 429 rate_limited answers",
                 got_throttled == exp_throttled, f"{got_throttled} vs expected {exp_throttled}")
    got["sum(executor_timeouts_total)"] = prom.scalar("sum(executor_timeouts_total)")
    checks.check("executor_timeouts_total = executor 504s",
                 got["sum(executor_timeouts_total)"] == exp_timeouts,
                 f"{got['sum(executor_timeouts_total)']} vs expected {exp_timeouts}")
    got_http = as_int_map(prom.by(
        'http_requests_total{endpoint=~"/v1/models/.*predict"}', "endpoint", "status"))
    checks.check("http_requests_total by endpoint and status = every request sent (exact)",
                 nonzero(got_http) == exp_http,
                 f"{fmt_map(nonzero(got_http))} vs expected {fmt_map(exp_http)}")

    # Error ratios through rate(): the same scrapes for every series, so the extrapolation
    # cancels out of the ratio for series that existed at 0 before the traffic.
    expr_fashion = (f'sum(rate(inference_errors_total{{model="{model}"}}[1m])) '
                    f'/ sum(rate(inference_requests_total{{model="{model}"}}[1m]))')
    got["error ratio, model " + model] = prom.scalar(expr_fashion)
    v = got["error ratio, model " + model]
    checks.check(f"error ratio of model {model} (rate 1m) matches the traffic",
                 v is not None and abs(v - ratio_fashion) <= RATIO_TOLERANCE,
                 f"{v} vs expected {ratio_fashion:.4f} (+-{RATIO_TOLERANCE}): {expr_fashion}")
    expr_all = ("sum(rate(inference_errors_total[1m])) "
                "/ sum(rate(inference_requests_total[1m]))")
    v = prom.scalar(expr_all)
    got["error ratio, all requests"] = v
    unknown_first = prom.scalar(
        f'sum(increase(inference_requests_total{{model="unknown"}}[1m]))')
    got["increase(inference_requests_total{model=\"unknown\"}[1m])"] = unknown_first
    ok = v is not None and abs(v - ratio_all) <= RATIO_TOLERANCE
    detail = (f"{v} vs expected {ratio_all:.4f} (+-{RATIO_TOLERANCE}): {expr_all}")
    if not ok:
        detail += (f"; increase of model=\"unknown\" requests over 1m reads {unknown_first}"
                   f" for {UNKNOWN_ALPHA} sent: that series does not exist at 0 before the"
                   " first unknown-model request, so rate()/increase() miss its first"
                   " increment (burnserve pre-creates only loaded versions' series)")
    checks.check("error ratio of all requests (rate 1m) matches the traffic", ok, detail,
                 known_issue=True)
    # Per tenant through increase(), on the loaded model's series (pre-created at 0).
    inc = prom.by(f'sum by (tenant) (increase(inference_requests_total{{model="{model}"}}[1m]))',
                  "tenant")
    inc = {k[0]: round(val, 3) for k, val in inc.items()}
    got["increase by tenant, model " + model] = inc
    exp_ratio = per_tenant_fashion["alpha"] / per_tenant_fashion["beta"]
    got_ratio = inc.get("alpha", 0) / inc["beta"] if inc.get("beta") else None
    checks.check("increase() by tenant: alpha/beta ratio matches the traffic",
                 got_ratio is not None
                 and abs(got_ratio - exp_ratio) <= INCREASE_RATIO_TOLERANCE * exp_ratio,
                 f"{inc} -> {got_ratio} vs expected {exp_ratio:.4f} "
                 f"({per_tenant_fashion}, +-{INCREASE_RATIO_TOLERANCE:.0%})")

    # p99 of successful requests.
    expr_p99 = ("histogram_quantile(0.99, sum by (le) "
                "(rate(inference_latency_seconds_bucket[1m])))")
    p99 = prom.scalar(expr_p99)
    got["p99 seconds"] = p99
    client_max = max(success_seconds)
    bounds = [float(m["le"]) for m, _ in prom.query(
        'count by (le) (inference_latency_seconds_bucket)') if m["le"] != "+Inf"]
    bound = min((b for b in bounds if b >= client_max), default=math.inf)
    checks.check("p99 latency finite, positive, below 1 s and within the client's maximum's "
                 "bucket",
                 p99 is not None and math.isfinite(p99) and 0 < p99 < 1 and p99 <= bound,
                 f"{p99} s ({expr_p99}); client max {client_max:.4f} s, its bucket's bound "
                 f"{bound}")

    # Recording rules.
    rec = prom.by("burnserve:inference_error_ratio:rate5m", "model", "version")
    got["burnserve:inference_error_ratio:rate5m"] = {"/".join(k): val for k, val in rec.items()}
    for version, want in ver_ratio.items():
        have = rec.get((model, version))
        if want is None:
            continue
        checks.check(f"recording rule burnserve:inference_error_ratio:rate5m {model}/{version}",
                     have is not None and abs(have - want) <= RATIO_TOLERANCE,
                     f"{have} vs expected {want:.4f}")
    rps = prom.by("burnserve:inference_requests:rate5m", "model", "version")
    got["burnserve:inference_requests:rate5m"] = {"/".join(k): val for k, val in rps.items()}
    checks.check("recording rule burnserve:inference_requests:rate5m has every version, > 0",
                 all(rps.get((model, v), 0) > 0 for v in args.versions), f"{rps}")
    p99_rec = prom.by("burnserve:inference_latency_seconds:p99_5m", "model", "version")
    have = p99_rec.get((model, args.default_version))
    got["burnserve:inference_latency_seconds:p99_5m"] = {"/".join(k): val
                                                        for k, val in p99_rec.items()}
    checks.check(f"recording rule p99_5m {model}/{args.default_version} finite, < 1 s",
                 have is not None and math.isfinite(have) and 0 < have < 1, f"{have}")

    # Alerts.
    def timeout_alert():
        return [a for a in prom.alerts()
                if a["labels"]["alertname"] == "BurnserveExecutorTimeouts"
                and a["state"] == "firing"]
    fired = wait_for("BurnserveExecutorTimeouts to fire", timeout_alert, timeout=15)
    alerts = prom.alerts()
    got["alerts"] = [{"alertname": a["labels"]["alertname"], "state": a["state"],
                      "labels": a["labels"], "value": a.get("value")} for a in alerts]
    checks.check("BurnserveExecutorTimeouts is firing",
                 bool(fired) and all(a["labels"].get("device") == "cpu" for a in fired),
                 f"{[(a['labels'], a['state']) for a in (fired or [])]}")
    firing = sorted({a["labels"]["alertname"] for a in alerts if a["state"] == "firing"})
    checks.check("no other alert firing", firing == ["BurnserveExecutorTimeouts"],
                 f"firing: {firing}")
    pending = sorted((a["labels"]["alertname"], a["labels"].get("model", ""),
                      a["labels"].get("version", "")) for a in alerts if a["state"] == "pending")
    want_pending = sorted(("BurnserveHighErrorRatio", model, v) for v, r in ver_ratio.items()
                          if r is not None and r > 0.05)
    # (model="unknown" may be pending too when a scrape fell between the 404s: not checked.)
    checks.check("BurnserveHighErrorRatio pending (for: 5m) for each version above 5% errors",
                 [p for p in pending if p[0] == "BurnserveHighErrorRatio" and p[1] == model]
                 == want_pending,
                 f"pending: {pending}, expected {want_pending}")
    summary["prometheus"] = got

    # ---- 5. promtool check metrics ------------------------------------------------------------
    status, _, text, _ = http("GET", args.burnserve.rstrip("/") + "/metrics")
    proc = subprocess.run([args.promtool, "check", "metrics"], input=text,
                          capture_output=True, timeout=30, check=False)
    out = (proc.stdout + proc.stderr).decode(errors="replace")
    summary["promtool_check_metrics"] = {"rc": proc.returncode, "output": out,
                                         "metrics_bytes": len(text)}
    checks.check("promtool check metrics on /metrics reports nothing",
                 status == 200 and proc.returncode == 0 and not out.strip(),
                 f"HTTP {status}, {len(text)} bytes, rc {proc.returncode}, output: {out!r}")

    # ---- 5b. every Grafana panel's PromQL ------------------------------------------------
    # Each target of deploy/grafana/burnserve.json runs through this Prometheus with the
    # dashboard's variables filled in ($model, $version: all; $__rate_interval: 1m). A query
    # that errors fails; so does one that returns no data, except on the GPU panel (CPU
    # build). The async-jobs panel has data: job_queue_depth exists at 0 for loaded versions.
    dashboard_path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                  "deploy", "grafana", "burnserve.json")
    with open(dashboard_path, encoding="utf-8") as f:
        dashboard = json.load(f)
    panel_results = []
    for panel in dashboard["panels"]:
        may_be_empty = "GPU" in panel["title"]
        for target in panel["targets"]:
            expr = (target["expr"].replace("$__rate_interval", "1m")
                    .replace("$model", ".*").replace("$version", ".*"))
            try:
                series = len(prom.query(expr))
                error = None
            except Exception as err:  # noqa: BLE001 - a failing query is the finding
                series, error = 0, str(err)
            ok = error is None and (series > 0 or may_be_empty)
            panel_results.append({"panel": panel["title"], "expr": expr, "series": series,
                                  "error": error, "ok": ok})
            checks.check(f"grafana panel '{panel['title']}' ({target['refId']})", ok,
                         f"{series} series" + (f", error {error}" if error else "")
                         + (" (may be empty)" if may_be_empty else ""))
    summary["grafana_panels"] = panel_results

    # ---- 6. burnserve's log ---------------------------------------------------------------
    if args.burnserve_log:
        with open(args.burnserve_log, encoding="utf-8", errors="replace") as f:
            log = re.sub(r"\x1b\[[0-9;]*m", "", f.read())
        errors = [line for line in log.splitlines() if re.search(r"\bERROR\b", line)]
        warns = sum(1 for line in log.splitlines() if re.search(r"\bWARN\b", line))
        summary["burnserve_log"] = {"error_lines": errors, "warn_lines": warns}
        checks.check("no ERROR in burnserve's log", not errors,
                     f"{len(errors)} ERROR lines, {warns} WARN lines (429/504 log at WARN)")

    summary["elapsed_seconds"] = round(time.monotonic() - started, 3)
    return checks, summary, client


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--burnserve", required=True, help="base URL, e.g. http://127.0.0.1:18000")
    p.add_argument("--prometheus", required=True, help="base URL of Prometheus")
    p.add_argument("--alpha-key", required=True)
    p.add_argument("--beta-key", required=True)
    p.add_argument("--model", default="fashion")
    p.add_argument("--versions", default="1,2", type=lambda s: s.split(","))
    p.add_argument("--default-version", default="2")
    p.add_argument("--timeout-version", default="1",
                   help="the version that gets only the timeout_ms 0 requests")
    p.add_argument("--promtool", default="promtool")
    p.add_argument("--burnserve-log")
    p.add_argument("--settle", type=float, default=2.5,
                   help="seconds to wait after the final counters are scraped")
    p.add_argument("--strict", action="store_true",
                   help="fail on checks marked as known burnserve issues too")
    p.add_argument("--out", required=True, help="result JSON file")
    args = p.parse_args()

    try:
        checks, summary, client = run(args)
    except Exception as err:  # noqa: BLE001 - reported, and the run fails
        checks, summary, client = Checks(), {"exception": repr(err)}, None
        checks.check("script ran to the end", False, repr(err))
    summary["checks"] = checks.items
    if client is not None:
        summary["requests"] = [{k: (round(v, 5) if k == "seconds" else v) for k, v in r.items()}
                               for r in client.records]
    failed = checks.failed(args.strict)
    known = [c for c in checks.items if not c["ok"] and c["known_issue"]]
    summary["passed"] = not failed
    summary["known_issues"] = [c["name"] + ": " + c["detail"] for c in known]
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2, sort_keys=True, default=str)
    print()
    print("==== summary ====")
    print("sent:", json.dumps(summary.get("sent"), sort_keys=True))
    print("statuses:", json.dumps(summary.get("statuses"), sort_keys=True))
    exp = summary.get("expected", {})
    got = summary.get("prometheus", {})
    for key in ["sum(inference_requests_total)", "sum(inference_errors_total)",
                "sum(executor_timeouts_total)", "requests by tenant",
                "error ratio, all requests"]:
        if key in exp:
            print(f"{key}: expected {exp[key]}")
    for key in ["sum(inference_requests_total)", "sum by (tenant) (inference_requests_total)",
                "error ratio, model fashion", "error ratio, all requests", "p99 seconds",
                "increase by tenant, model fashion", "burnserve:inference_error_ratio:rate5m"]:
        if key in got:
            print(f"{key}: prometheus {got[key]}")
    n_ok = sum(1 for c in checks.items if c["ok"])
    print(f"checks: {n_ok}/{len(checks.items)} passed, {len(failed)} failed, "
          f"{len(known)} known burnserve issue(s) "
          f"{'(failing: --strict)' if args.strict else '(reported, not failing)'}")
    for c in known:
        print(f"  KNOWN ISSUE: {c['name']}: {c['detail']}")
    for c in failed:
        print(f"  FAILED: {c['name']}: {c['detail']}")
    print(f"result: {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
