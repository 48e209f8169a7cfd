// Reload under load: steady predict traffic on `fashion` while a second scenario reloads its
// default version back to back in the middle third of the run. Requests are tagged with the
// phase they were sent in, so the summary gives errors and p99 during and outside reloads.
//
//   BASE_URL (default http://127.0.0.1:8000), ADMIN_TOKEN (required), DURATION_S (default 30),
//   VUS (default 16), MODEL (default fashion), VERSION (default 2), RESULTS (JSON output path).
import http from 'k6/http';
import { check } from 'k6';
import { Trend } from 'k6/metrics';
import exec from 'k6/execution';

const BASE = __ENV.BASE_URL || 'http://127.0.0.1:8000';
const TOKEN = __ENV.ADMIN_TOKEN;
const DURATION = Number(__ENV.DURATION_S || 30);
const VUS = Number(__ENV.VUS || 16);
const MODEL = __ENV.MODEL || 'fashion';
const VERSION = __ENV.VERSION || '2';
const RELOAD_FROM = DURATION / 3;
const RELOAD_FOR = DURATION / 3;

const queueTime = new Trend('queue_time_ms', true);
const inferenceTime = new Trend('inference_time_ms', true);

export const options = {
  scenarios: {
    predict: { executor: 'constant-vus', vus: VUS, duration: `${DURATION}s`, exec: 'predict' },
    reload: { executor: 'constant-vus', vus: 1, startTime: `${RELOAD_FROM}s`, duration: `${RELOAD_FOR}s`, exec: 'reload' },
  },
  thresholds: {
    'http_req_failed{scenario:predict}': ['rate==0'],
    'http_req_failed{scenario:reload}': ['rate==0'],
    'http_req_duration{phase:steady}': ['p(99)>=0'],
    'http_req_duration{phase:reloading}': ['p(99)>=0'],
    'http_reqs{phase:steady}': ['count>=0'],
    'http_reqs{phase:reloading}': ['count>=0'],
    'http_reqs{scenario:reload}': ['count>=0'],
  },
  summaryTrendStats: ['avg', 'p(50)', 'p(95)', 'p(99)', 'max'],
};

const image = JSON.stringify({ inputs: Array(784).fill(0.5) });
const json = { headers: { 'Content-Type': 'application/json' } };

export function predict() {
  const elapsed = (Date.now() - exec.scenario.startTime) / 1000;
  const phase = elapsed >= RELOAD_FROM && elapsed < RELOAD_FROM + RELOAD_FOR ? 'reloading' : 'steady';
  const res = http.post(`${BASE}/v1/models/${MODEL}/predict`, image, { ...json, tags: { phase } });
  check(res, { 'status 200': (r) => r.status === 200 });
  if (res.status === 200) {
    queueTime.add(Number(res.headers['X-Queue-Time']), { phase });
    inferenceTime.add(Number(res.headers['X-Inference-Time']), { phase });
  }
}

export function reload() {
  const res = http.post(`${BASE}/admin/models/${MODEL}/versions/${VERSION}/reload`, null, {
    headers: { Authorization: `Bearer ${TOKEN}` },
    tags: { phase: 'admin' },
  });
  check(res, { 'reload 200': (r) => r.status === 200 });
}

function metric(data, name) {
  return data.metrics[name] ? data.metrics[name].values : {};
}

export function handleSummary(data) {
  const row = (phase) => {
    const d = metric(data, `http_req_duration{phase:${phase}}`);
    const n = metric(data, `http_reqs{phase:${phase}}`);
    return { phase, requests: n.count || 0, p50_ms: d['p(50)'], p95_ms: d['p(95)'], p99_ms: d['p(99)'], max_ms: d.max };
  };
  const result = {
    scenario: 'reload-under-load',
    model: MODEL,
    version: VERSION,
    vus: VUS,
    duration_s: DURATION,
    reloads: (metric(data, 'http_reqs{scenario:reload}').count) || 0,
    failed_predictions: Math.round((metric(data, 'http_req_failed{scenario:predict}').passes) || 0),
    phases: [row('steady'), row('reloading')],
  };
  const f = (v) => (v === undefined ? '-' : v.toFixed(2));
  const table = [
    `reload under load: ${result.reloads} reloads of ${MODEL}/${VERSION}, ${VUS} VUs, ${DURATION} s, failed predictions: ${result.failed_predictions}`,
    '| phase | requests | p50 ms | p95 ms | p99 ms | max ms |',
    '|---|---|---|---|---|---|',
    ...result.phases.map((p) => `| ${p.phase} | ${p.requests} | ${f(p.p50_ms)} | ${f(p.p95_ms)} | ${f(p.p99_ms)} | ${f(p.max_ms)} |`),
  ].join('\n');
  const out = { stdout: table + '\n' };
  if (__ENV.RESULTS) out[__ENV.RESULTS] = JSON.stringify(result, null, 2);
  return out;
}
