// One model through each data path of the KServe v2 protocol: VUS users send back to back for
// DURATION_S seconds the same 1-item FP32 request, as
//   MODE=json     HTTP JSON infer (`data`);
//   MODE=binary   HTTP binary tensor data (raw little-endian input and output);
//   MODE=grpc     gRPC ModelInfer with raw_input_contents (k6's gRPC module, our proto);
//   MODE=live     GET /v2/health/live: the HTTP floor (a route that does no work).
// Writes a JSON summary to RESULTS as steady.js does.
//
//   BASE_URL (default http://127.0.0.1:8000), GRPC_ADDR (default 127.0.0.1:8001), MODEL
//   (default fashion), VERSION (default 1), INPUT (default pixels), SHAPE (default 1,28,28),
//   VUS (default 64), DURATION_S (default 10), NAME, RESULTS. RATE (requests a second) sends at
//   that fixed rate instead (k6's constant-arrival-rate, at most VUS in flight): paths compared
//   at the same load, where each wake-up of the server is shared by as many requests.
import http from 'k6/http';
import grpc from 'k6/net/grpc';
import encoding from 'k6/encoding';
import { check } from 'k6';

const BASE = __ENV.BASE_URL || 'http://127.0.0.1:8000';
const GRPC_ADDR = __ENV.GRPC_ADDR || '127.0.0.1:8001';
const MODE = __ENV.MODE || 'json';
const MODEL = __ENV.MODEL || 'fashion';
const VERSION = __ENV.VERSION || '1';
const INPUT = __ENV.INPUT || 'pixels';
const SHAPE = (__ENV.SHAPE || '1,28,28').split(',').map(Number);
const VUS = Number(__ENV.VUS || 64);
const DURATION = Number(__ENV.DURATION_S || 10);
const NAME = __ENV.NAME || MODE;
const RATE = Number(__ENV.RATE || 0);

const scenario =
  RATE > 0
    ? {
        executor: 'constant-arrival-rate',
        rate: RATE,
        timeUnit: '1s',
        duration: `${DURATION}s`,
        preAllocatedVUs: VUS,
        maxVUs: VUS,
      }
    : { executor: 'constant-vus', vus: VUS, duration: `${DURATION}s` };

export const options = {
  scenarios: { v2: scenario },
  summaryTrendStats: ['avg', 'p(50)', 'p(95)', 'p(99)', 'max'],
  discardResponseBodies: MODE !== 'grpc',
};

const count = SHAPE.reduce((a, b) => a * b, 1);
const values = Array.from({ length: count }, (_, i) => (i % 255) / 255);
const inferPath = `${BASE}/v2/models/${MODEL}/versions/${VERSION}/infer`;

const jsonBody = JSON.stringify({
  inputs: [{ name: INPUT, shape: SHAPE, datatype: 'FP32', data: values }],
});

// Binary: the JSON header, then the floats; outputs asked for as binary too.
const header = JSON.stringify({
  inputs: [{ name: INPUT, shape: SHAPE, datatype: 'FP32', parameters: { binary_data_size: count * 4 } }],
  parameters: { binary_data_output: true },
});
const headerBytes = new Uint8Array(header.length);
for (let i = 0; i < header.length; i++) headerBytes[i] = header.charCodeAt(i);
const raw = new Uint8Array(new Float32Array(values).buffer);
const framed = new Uint8Array(headerBytes.length + raw.length);
framed.set(headerBytes, 0);
framed.set(raw, headerBytes.length);
const binaryBody = framed.buffer;
const binaryParams = {
  headers: {
    'Content-Type': 'application/octet-stream',
    'Inference-Header-Content-Length': String(headerBytes.length),
  },
};
const jsonParams = { headers: { 'Content-Type': 'application/json' } };

const client = new grpc.Client();
if (MODE === 'grpc') client.load(['../../proto'], 'inference.proto');
const grpcRequest = {
  model_name: MODEL,
  model_version: VERSION,
  inputs: [{ name: INPUT, datatype: 'FP32', shape: SHAPE }],
  raw_input_contents: [encoding.b64encode(raw.buffer)],
};
// The generator's own cost: k6 turns each answer into a JS object unless told not to, and on
// its one pinned core that capped gRPC at ~5k req/s (the server at 0.2 cores). The status is
// still checked.
const grpcParams = { discardResponseMessage: true };
let connected = false;

export default function () {
  if (MODE === 'grpc') {
    if (!connected) {
      client.connect(GRPC_ADDR, { plaintext: true });
      connected = true;
    }
    const res = client.invoke('inference.GRPCInferenceService/ModelInfer', grpcRequest, grpcParams);
    check(res, { 'status OK': (r) => r && r.status === grpc.StatusOK });
    return;
  }
  let res;
  if (MODE === 'live') res = http.get(`${BASE}/v2/health/live`);
  else if (MODE === 'binary') res = http.post(inferPath, binaryBody, binaryParams);
  else res = http.post(inferPath, jsonBody, jsonParams);
  check(res, { 'status 200': (r) => r.status === 200 });
}

const stat = (data, name) => (data.metrics[name] ? data.metrics[name].values : {});

export function handleSummary(data) {
  const grpcMode = MODE === 'grpc';
  const d = stat(data, grpcMode ? 'grpc_req_duration' : 'http_req_duration');
  const iterations = stat(data, 'iterations');
  const checks = stat(data, 'checks');
  const dropped = stat(data, 'dropped_iterations');
  const result = {
    name: NAME,
    mode: MODE,
    vus: VUS,
    duration_s: DURATION,
    requests: iterations.count || 0,
    req_per_s: iterations.rate || 0,
    failed_rate: 1 - (checks.rate === undefined ? 1 : checks.rate),
    dropped: dropped.count || 0,
    p50_ms: d['p(50)'],
    p95_ms: d['p(95)'],
    p99_ms: d['p(99)'],
  };
  const f = (v) => (v === undefined ? '-' : v.toFixed(2));
  const line = `${NAME}: ${VUS} VUs, ${result.requests} requests, ${f(result.req_per_s)} req/s, p50 ${f(result.p50_ms)} ms, p99 ${f(result.p99_ms)} ms, failed ${f(100 * result.failed_rate)}%`;
  const out = { stdout: line + '\n' };
  if (__ENV.RESULTS) out[__ENV.RESULTS] = JSON.stringify(result, null, 2);
  return out;
}
