// Steady load: VUS virtual users post the same predict body back to back for DURATION_S
// seconds. Records throughput, latency percentiles and our x-queue-time / x-inference-time
// headers as Trends; writes a JSON summary to RESULTS.
//
//   BASE_URL (default http://127.0.0.1:8000), PREDICT_PATH (default /v1/models/fashion/predict),
//   BODY (image: 784 floats | text: one sentence; default image), VUS (default 16),
//   DURATION_S (default 10), NAME (label in the summary), RESULTS (JSON output path),
//   MAX_FAILED (allowed failed-request rate, default 0.01), API_KEY (sent as a Bearer token),
//   RATE (requests per second: an open loop at that arrival rate, with VUS pre-allocated users,
//   instead of VUS users sending back to back), DISCARD_BODIES (1: k6 reads no response body,
//   for runs where k6's own CPU must stay out of its latency figures), METHOD (GET: a bodyless GET
//   of PREDICT_PATH, to measure the round trip of a route that does no work).
import http from 'k6/http';
import { check } from 'k6';
import { Counter, Trend } from 'k6/metrics';

const BASE = __ENV.BASE_URL || 'http://127.0.0.1:8000';
const PATH = __ENV.PREDICT_PATH || '/v1/models/fashion/predict';
const VUS = Number(__ENV.VUS || 16);
const DURATION = Number(__ENV.DURATION_S || 10);
const NAME = __ENV.NAME || 'steady';
const RATE = Number(__ENV.RATE || 0);

const queueTime = new Trend('queue_time_ms', true);
const inferenceTime = new Trend('inference_time_ms', true);
const refused = new Counter('status_429');

export const options = {
  scenarios: {
    steady: RATE > 0
      ? { executor: 'constant-arrival-rate', rate: RATE, timeUnit: '1s', duration: `${DURATION}s`,
        preAllocatedVUs: VUS, maxVUs: VUS }
      : { executor: 'constant-vus', vus: VUS, duration: `${DURATION}s` },
  },
  thresholds: {
    http_req_failed: [`rate<=${Number(__ENV.MAX_FAILED || 0.01)}`],
    http_req_duration: ['p(99)<10000'],
  },
  summaryTrendStats: ['avg', 'p(50)', 'p(95)', 'p(99)', 'max'],
  discardResponseBodies: __ENV.DISCARD_BODIES === '1',
};

const bodies = {
  image: JSON.stringify({ inputs: Array.from({ length: 784 }, (_, i) => (i % 255) / 255) }),
  text: JSON.stringify({ inputs: ['The model server answers every request quickly and reports it.'] }),
};
const body = bodies[__ENV.BODY || 'image'];
const headers = { 'Content-Type': 'application/json' };
if (__ENV.API_KEY) headers.Authorization = `Bearer ${__ENV.API_KEY}`;
const params = { headers };

export default function () {
  const res = __ENV.METHOD === 'GET'
    ? http.get(`${BASE}${PATH}`, params)
    : http.post(`${BASE}${PATH}`, body, params);
  check(res, { 'status 200': (r) => r.status === 200 });
  if (res.status === 429) refused.add(1);
  if (res.status === 200 && res.headers['X-Queue-Time'] !== undefined) {
    queueTime.add(Number(res.headers['X-Queue-Time']));
    inferenceTime.add(Number(res.headers['X-Inference-Time']));
  }
}

const values = (data, name) => (data.metrics[name] ? data.metrics[name].values : {});

export function handleSummary(data) {
  const d = values(data, 'http_req_duration');
  const q = values(data, 'queue_time_ms');
  const inf = values(data, 'inference_time_ms');
  const reqs = values(data, 'http_reqs');
  const failed = values(data, 'http_req_failed');
  const result = {
    name: NAME,
    path: PATH,
    vus: VUS,
    rate: RATE || undefined,
    duration_s: DURATION,
    requests: reqs.count || 0,
    req_per_s: reqs.rate || 0,
    failed_rate: failed.rate || 0,
    dropped_iterations: values(data, 'dropped_iterations').count || 0,
    status_429: values(data, 'status_429').count || 0,
    p50_ms: d['p(50)'],
    p95_ms: d['p(95)'],
    p99_ms: d['p(99)'],
    queue_p50_ms: q['p(50)'],
    inference_p50_ms: inf['p(50)'],
  };
  const f = (v) => (v === undefined ? '-' : v.toFixed(2));
  const line = `${NAME}: ${VUS} VUs, ${result.requests} requests, ${f(result.req_per_s)} req/s, p50 ${f(result.p50_ms)} ms, p99 ${f(result.p99_ms)} ms, failed ${f(100 * result.failed_rate)}%`;
  const out = { stdout: line + '\n' };
  if (__ENV.RESULTS) out[__ENV.RESULTS] = JSON.stringify(result, null, 2);
  return out;
}
