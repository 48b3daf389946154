// k6 load test for evp's ingestion API, for people who use k6. The tool this project relies
// on for its numbers is `evp loadgen` (see README.md beside this file); this script sends the
// same kind of traffic.
//
//   k6 run -e URL=http://localhost:3001 -e KEY=evp_... -e RATE=5000 -e BATCH=100 loadtest/k6-events.js
//
// Environment:
//   URL            base URL of evp (default http://localhost:3001)
//   KEY            API key, from `evp apikey create --name k6` (required)
//   RATE           target events per second (default 5000); requests per second = RATE / BATCH
//   BATCH          events per batch request in the batch scenario (default 100)
//   SCENARIO       batch (default), single, or all (single first, then batch)
//   DURATION       length of each scenario (default 60s)
//   USERS          distinct userIds (default 10000)
//   SESSIONS       distinct sessionIds (default 50000)
//   PAYLOAD_BYTES  size of each event's payload object (default 200)
//   DUP_RATIO      share of events that repeat an earlier eventId (default 0.01)
//   MAX_VUS        most virtual users, i.e. requests in flight (default 1024)

import http from 'k6/http';
import { check, sleep } from 'k6';
import { Counter } from 'k6/metrics';

const URL = (__ENV.URL || 'http://localhost:3001').replace(/\/+$/, '');
const KEY = __ENV.KEY || '';
const RATE = Number(__ENV.RATE || 5000);
const BATCH = Math.max(1, Math.min(1000, Number(__ENV.BATCH || 100)));
const SCENARIO = __ENV.SCENARIO || 'batch';
const DURATION = __ENV.DURATION || '60s';
const USERS = Number(__ENV.USERS || 10000);
const SESSIONS = Number(__ENV.SESSIONS || 50000);
const PAYLOAD_BYTES = Number(__ENV.PAYLOAD_BYTES || 200);
const DUP_RATIO = Number(__ENV.DUP_RATIO || 0.01);
const MAX_VUS = Number(__ENV.MAX_VUS || 1024);

const EVENT_TYPES = ['page_view', 'click', 'purchase', 'signup', 'login',
  'logout', 'add_to_cart', 'search', 'share', 'video_play'];
const SOURCES = ['web', 'ios', 'android'];
const BROWSERS = ['chrome', 'firefox', 'safari', 'edge'];
const VERSIONS = ['1.2.3', '1.3.0', '2.0.1'];

const eventsAccepted = new Counter('events_accepted');
const eventsDuplicate = new Counter('events_duplicate');
const eventsRejected = new Counter('events_rejected');

function durationSeconds(d) {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(d);
  if (!m) return 60;
  return Number(m[1]) * { ms: 0.001, s: 1, m: 60, h: 3600 }[m[2]];
}

// Open loop: constant-arrival-rate starts requests at a fixed rate whatever the latency, and
// reports the requests it could not start (dropped_iterations) when MAX_VUS are all busy.
function arrival(perRequest, startTime, tags) {
  return {
    executor: 'constant-arrival-rate',
    rate: Math.max(1, Math.round(RATE / perRequest)),
    timeUnit: '1s',
    duration: DURATION,
    preAllocatedVUs: Math.min(MAX_VUS, 64),
    maxVUs: MAX_VUS,
    startTime,
    exec: perRequest === 1 ? 'single' : 'batch',
    tags,
  };
}

const scenarios = {};
if (SCENARIO === 'single' || SCENARIO === 'all') {
  scenarios.single = arrival(1, '0s', { kind: 'single' });
}
if (SCENARIO === 'batch' || SCENARIO === 'all') {
  const start = SCENARIO === 'all' ? `${durationSeconds(DURATION) + 5}s` : '0s';
  scenarios.batch = arrival(BATCH, start, { kind: 'batch' });
}

export const options = {
  scenarios,
  discardResponseBodies: false,
  thresholds: {
    // The project's bars: single events under 10 ms at p99; nothing fails.
    'http_req_duration{kind:single}': ['p(99)<10'],
    'http_req_failed': ['rate<0.01'],
    'checks': ['rate>0.99'],
  },
  summaryTrendStats: ['avg', 'p(50)', 'p(90)', 'p(99)', 'p(99.9)', 'max'],
};

const runId = Math.random().toString(16).slice(2, 10);
const recentIds = []; // per VU: ids this VU sent, for repeats
let seq = 0;

function pick(a) {
  return a[Math.floor(Math.random() * a.length)];
}

function rnd(n) {
  return Math.floor(Math.random() * n);
}

function payloadFor(type) {
  let p;
  switch (type) {
    case 'page_view': p = { page: `/products/${rnd(5000)}`, referrer: 'https://www.example.com/', title: `Product ${rnd(5000)}` }; break;
    case 'click': p = { element: `button#cta-${rnd(50)}`, page: `/products/${rnd(5000)}`, x: rnd(1920), y: rnd(1080) }; break;
    case 'purchase': p = { orderId: `ord_${rnd(1000000)}`, amount: rnd(50000) / 100, currency: 'USD', items: 1 + rnd(9) }; break;
    case 'signup': p = { plan: pick(['free', 'pro', 'team']), method: 'email', campaign: `spring-${rnd(20)}` }; break;
    case 'login': p = { method: 'password', success: true, mfa: Math.random() < 0.5 }; break;
    case 'logout': p = { reason: 'user', sessionSeconds: rnd(7200) }; break;
    case 'add_to_cart': p = { productId: `prod_${rnd(5000)}`, quantity: 1 + rnd(5), price: rnd(300) + 0.99 }; break;
    case 'search': p = { query: `running shoes ${rnd(100)}`, results: rnd(400), page: 1 + rnd(5) }; break;
    case 'share': p = { channel: pick(['twitter', 'facebook', 'email', 'link']), url: `/products/${rnd(5000)}` }; break;
    default: p = { videoId: `vid_${rnd(2000)}`, position: rnd(600), quality: '1080p' };
  }
  // Pad the payload's JSON to PAYLOAD_BYTES.
  const base = JSON.stringify(p).length;
  const padKey = ',"pad":""'.length;
  if (PAYLOAD_BYTES > base + padKey) {
    p.pad = 'x'.repeat(PAYLOAD_BYTES - base - padKey);
  }
  return p;
}

function nextId() {
  if (recentIds.length > 0 && Math.random() < DUP_RATIO) {
    return recentIds[rnd(recentIds.length)];
  }
  const id = `k6-${runId}-${__VU}-${seq++}`;
  if (recentIds.length < 10000) {
    recentIds.push(id);
  } else {
    recentIds[rnd(recentIds.length)] = id;
  }
  return id;
}

function makeEvent(now) {
  const type = pick(EVENT_TYPES);
  const ev = {
    eventId: nextId(),
    eventType: type,
    userId: `user_${rnd(USERS)}`,
    sessionId: `sess_${rnd(SESSIONS)}`,
    timestamp: now,
    metadata: { source: pick(SOURCES), browser: pick(BROWSERS), version: pick(VERSIONS), locale: 'en-US' },
  };
  if (PAYLOAD_BYTES > 0) {
    ev.payload = payloadFor(type);
  }
  return ev;
}

const params = {
  headers: { 'Content-Type': 'application/json', 'x-api-key': KEY },
  responseType: 'text',
};

function count(res, n) {
  if (res.status !== 200 && res.status !== 202) {
    eventsRejected.add(n);
    return;
  }
  let data = {};
  try {
    data = res.json('data') || {};
  } catch (e) {
    // counted as accepted below
  }
  if (typeof data.accepted === 'number') {
    eventsAccepted.add(data.accepted);
    eventsDuplicate.add(data.duplicates || 0);
  } else if (data.duplicate === true) {
    eventsDuplicate.add(n);
  } else {
    eventsAccepted.add(n);
  }
}

export function setup() {
  if (!KEY) {
    throw new Error('set KEY to an API key: k6 run -e KEY=evp_... (create one with: evp apikey create --name k6)');
  }
  const h = http.get(`${URL}/api/health`);
  if (h.status !== 200) {
    throw new Error(`evp at ${URL} is not healthy: ${h.status} ${h.body}`);
  }
  return { stored: storedEvents() };
}

export function single() {
  const res = http.post(`${URL}/api/v1/events`, JSON.stringify(makeEvent(new Date().toISOString())), params);
  check(res, { 'single: 202 accepted or 200 duplicate': (r) => r.status === 202 || r.status === 200 });
  count(res, 1);
}

export function batch() {
  const now = new Date().toISOString();
  const events = [];
  for (let i = 0; i < BATCH; i++) {
    events.push(makeEvent(now));
  }
  const res = http.post(`${URL}/api/v1/events/batch`, JSON.stringify({ events }), params);
  check(res, { 'batch: 202': (r) => r.status === 202 });
  count(res, BATCH);
}

function metrics() {
  const res = http.get(`${URL}/api/metrics`, { headers: { 'x-api-key': KEY }, responseType: 'text' });
  if (res.status !== 200) {
    return null;
  }
  return res.json('data');
}

function storedEvents() {
  const m = metrics();
  return m ? m.processing.totalEvents : -1;
}

// End to end, as far as k6 can tell: wait until evp's buffer is empty (every accepted event
// processed), at most 120 s, and print how many events the store gained. `evp loadgen`
// measures this exactly (accepted events against the store count, and the lag).
export function teardown(data) {
  const sendEnd = Date.now();
  let m = metrics();
  while (m && m.queue && (m.queue.streamLength > 0 || m.queue.pendingMessages > 0) && Date.now() - sendEnd < 120000) {
    sleep(0.1);
    m = metrics();
  }
  if (!m || data.stored < 0) {
    console.warn('cannot read GET /api/metrics; end-to-end not measured');
    return;
  }
  const lag = (Date.now() - sendEnd) / 1000;
  console.log(`store gained ${m.processing.totalEvents - data.stored} events; buffer empty ${lag.toFixed(2)} s after sending ended` +
    ` (compare with the events_accepted counter below)`);
}
