// Ramp to saturation: virtual users grow from 1 to MAX_VUS over DURATION_S seconds, posting a
// predict body back to back. Reports throughput and latency per load step (tagged by the
// number of VUs active when each request was sent), so the knee is visible.
//
//   BASE_URL (default http://127.0.0.1:8000), PREDICT_PATH (default /v1/models/fashion/predict),
//   MAX_VUS (default 64), DURATION_S (default 20), RESULTS (JSON output path).
import http from 'k6/http';
import { check } from 'k6';
import exec from 'k6/execution';

const BASE = __ENV.BASE_URL || 'http://127.0.0.1:8000';
const PATH = __ENV.PREDICT_PATH || '/v1/models/fashion/predict';
const MAX_VUS = Number(__ENV.MAX_VUS || 64);
const DURATION = Number(__ENV.DURATION_S || 20);
const STEPS = [1, 4, 16, MAX_VUS].filter((v, i, a) => v <= MAX_VUS && a.indexOf(v) === i);
const STEP_S = DURATION / STEPS.length;

export const options = {
  scenarios: {
    ramp: {
      executor: 'ramping-vus',
      startVUs: STEPS[0],
      stages: STEPS.flatMap((v) => [{ duration: '0s', target: v }, { duration: `${STEP_S}s`, target: v }]),
      gracefulRampDown: '0s',
    },
  },
  thresholds: Object.fromEntries([
    ['http_req_failed', ['rate<=0.01']],
    ...STEPS.map((v) => [`http_req_duration{step:${v}}`, ['p(99)>=0']]),
    ...STEPS.map((v) => [`http_reqs{step:${v}}`, ['count>=0']]),
  ]),
  summaryTrendStats: ['avg', 'p(50)', 'p(95)', 'p(99)', 'max'],
};

const body = JSON.stringify({ inputs: Array.from({ length: 784 }, (_, i) => (i % 255) / 255) });
const params = { headers: { 'Content-Type': 'application/json' } };

export default function () {
  const step = STEPS[Math.min(STEPS.length - 1, Math.floor((Date.now() - exec.scenario.startTime) / 1000 / STEP_S))];
  const res = http.post(`${BASE}${PATH}`, body, { ...params, tags: { step: String(step) } });
  check(res, { 'status 200': (r) => r.status === 200 });
}

const values = (data, name) => (data.metrics[name] ? data.metrics[name].values : {});

export function handleSummary(data) {
  const steps = STEPS.map((vus) => {
    const d = values(data, `http_req_duration{step:${vus}}`);
    const n = values(data, `http_reqs{step:${vus}}`);
    return { vus, requests: n.count || 0, req_per_s: (n.count || 0) / STEP_S, p50_ms: d['p(50)'], p99_ms: d['p(99)'] };
  });
  const result = { name: 'ramp', path: PATH, duration_s: DURATION, steps, failed_rate: values(data, 'http_req_failed').rate || 0 };
  const f = (v) => (v === undefined ? '-' : v.toFixed(2));
  const lines = steps.map((s) => `ramp ${s.vus} VUs: ${f(s.req_per_s)} req/s, p50 ${f(s.p50_ms)} ms, p99 ${f(s.p99_ms)} ms`);
  const out = { stdout: lines.join('\n') + '\n' };
  if (__ENV.RESULTS) out[__ENV.RESULTS] = JSON.stringify(result, null, 2);
  return out;
}
