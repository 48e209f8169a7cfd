// Steady load across a server's graceful shutdown: VUS virtual users post the same CNN body
// back to back for DURATION_S seconds while the caller sends SIGTERM. Each VU acts as a load
// balancer's health checking would: every READY_CHECK_MS (default 200; 0 = never) it asks
// /ready, and once that is not 200 it sends this server nothing more. Each answer is one of:
// served (200), refused (no connection: the listener had closed) or failed (anything else: an
// error status, a reset or a cut-off answer). Writes {served, refused, failed} to RESULTS.
//
//   BASE_URL, PREDICT_PATH (default /v1/models/fashion/predict), VUS (default 16),
//   DURATION_S (default 6), READY_CHECK_MS, RESULTS (JSON output path).
import http from 'k6/http';
import { sleep } from 'k6';
import { Counter } from 'k6/metrics';

const BASE = __ENV.BASE_URL || 'http://127.0.0.1:8000';
const PATH = __ENV.PREDICT_PATH || '/v1/models/fashion/predict';

const served = new Counter('served');
const refused = new Counter('refused');
const failed = new Counter('failed');

export const options = {
  scenarios: {
    drain: {
      executor: 'constant-vus',
      vus: Number(__ENV.VUS || 16),
      duration: `${Number(__ENV.DURATION_S || 6)}s`,
      gracefulStop: '10s',
    },
  },
};

const body = JSON.stringify({ inputs: Array.from({ length: 784 }, (_, i) => (i % 255) / 255) });
const params = { headers: { 'Content-Type': 'application/json' }, timeout: '20s' };

const READY_CHECK_MS = Number(__ENV.READY_CHECK_MS === undefined ? 200 : __ENV.READY_CHECK_MS);
let lastCheck = 0;
let removed = false;

export default function () {
  if (removed) {
    sleep(0.1);
    return;
  }
  if (READY_CHECK_MS > 0 && Date.now() - lastCheck >= READY_CHECK_MS) {
    lastCheck = Date.now();
    if (http.get(`${BASE}/ready`).status !== 200) {
      removed = true;
      return;
    }
  }
  const res = http.post(`${BASE}${PATH}`, body, params);
  if (res.status === 200) {
    served.add(1);
  } else if (res.status === 0 && /connection refused/i.test(res.error)) {
    refused.add(1);
    sleep(0.05);
  } else {
    failed.add(1);
    console.warn(`failed: status ${res.status} error ${res.error} body ${String(res.body).slice(0, 200)}`);
  }
}

const count = (data, name) => (data.metrics[name] ? data.metrics[name].values.count : 0);

export function handleSummary(data) {
  const result = { served: count(data, 'served'), refused: count(data, 'refused'), failed: count(data, 'failed') };
  const out = { stdout: `k6: ${result.served} served, ${result.refused} refused after the port closed, ${result.failed} failed\n` };
  if (__ENV.RESULTS) out[__ENV.RESULTS] = JSON.stringify(result, null, 2);
  return out;
}
