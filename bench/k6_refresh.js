// The k6 side of bench/generator_efficiency: the same mobile refresh loop as the Locust sides.
// Each VU logs in once via LKFL on its own account, then rotates its refresh token, no wait.
// Only requests that end inside the measured window [WINDOW_START_MS, WINDOW_END_MS] count,
// as Locust's statistics, reset at the window's start, count the Locust sides'.
import http from 'k6/http';
import { Counter, Trend } from 'k6/metrics';

const URL = __ENV.URL;
const SECRET = __ENV.CLIENT_SECRET;
const START = Number(__ENV.WINDOW_START_MS);
const END = Number(__ENV.WINDOW_END_MS);
const ACCOUNTS = JSON.parse(open(__ENV.ACCOUNTS));
const HEADERS = { headers: { 'Content-Type': 'application/json' } };

const refreshes = new Counter('window_refreshes');
const requests = new Counter('window_requests');
const failures = new Counter('window_failures');
const latency = new Trend('window_latency', true);

export const options = {
  discardResponseBodies: false,
  summaryTrendStats: ['p(50)', 'p(99)', 'max'],
};

let token = null;

function counted(res, refresh) {
  const now = Date.now();
  if (now < START || now > END) return;
  requests.add(1);
  if (res.status !== 200) failures.add(1);
  if (refresh) {
    refreshes.add(1);
    latency.add(res.timings.duration);
  }
}

function login() {
  const account = ACCOUNTS[(__VU - 1) % ACCOUNTS.length];
  const body = JSON.stringify({
    inn: account.inn, password: account.lkfl_password, client_secret: SECRET,
  });
  const res = http.post(`${URL}/v2/mobile/users/lkfl/auth`, body, HEADERS);
  counted(res, false);
  token = res.status === 200 ? res.json('refresh_token') : null;
}

export default function () {
  if (token === null) {
    login();
    return;
  }
  const body = JSON.stringify({ refresh_token: token, client_secret: SECRET });
  const res = http.post(`${URL}/v2/mobile/users/refresh`, body, HEADERS);
  counted(res, true);
  token = res.status === 200 ? res.json('refresh_token') : null;
}

export function handleSummary(data) {
  return { [__ENV.SUMMARY]: JSON.stringify(data.metrics) };
}
