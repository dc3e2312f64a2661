// Drives the live dashboard of `nfcs-bench serve` in headless Chromium over the
// DevTools protocol (CDP) and prints what it saw as one JSON object on stdout.
//
//   node --experimental-websocket dashboard_cdp.mjs --url URL [--chromium PATH]
//        [--gap-ms 4000] --screenshot OUT.png [--timeout-ms 60000]
//
// It starts Chromium with a fresh temporary profile and --remote-debugging-port=0,
// reads the real port from Chromium's "DevTools listening on ws://..." stderr line,
// attaches to the page, opens URL, records page problems (uncaught exceptions,
// console.error/assert, Log entries of level error), waits for
// <body data-ready="1">, takes a DOM snapshot, waits --gap-ms, takes a second
// one, and writes a full-page PNG. Output:
//   {"problems": [...], "first": {...}, "second": {...}, "screenshot": "OUT.png"}
// Exit codes: 0 ok, 1 launch/CDP failure, 2 bad arguments, 3 overall timeout;
// on 1 and 3 the JSON carries "error". Only that JSON goes to stdout; diagnostics
// go to stderr. Chromium is killed and its profile removed in every case.
//
// The Rust integration test (crates/nfcs-bench/tests) starts `nfcs-bench serve`,
// runs this script against its /dashboard, parses the JSON and asserts on it
// (no problems, ready, counter and chart points growing between the snapshots,
// cards filled, transport). Needs Node >= 20 run with --experimental-websocket
// (on Node >= 22 WebSocket is global and the flag is harmless) and a Chromium.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const CARDS = ['overall-score', 'coordination-frequency', 'response-p95', 'memory-efficiency',
  'hit-ratio', 'eviction-rate', 'memory-usage'];
const CHARTS = ['chart-hit-ratio', 'chart-coordination', 'chart-response', 'chart-memory'];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...a) => console.error('[dashboard_cdp]', ...a);
const emit = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

// ------------------------------------------------------------------ arguments
const opts = { url: null, chromium: '/usr/bin/chromium', 'gap-ms': 4000, screenshot: null, 'timeout-ms': 60000 };
function usage(msg) {
  log(msg + '\nusage: node --experimental-websocket dashboard_cdp.mjs --url URL [--chromium PATH]'
    + ' [--gap-ms N] --screenshot OUT.png [--timeout-ms T]');
  emit({ error: 'arguments: ' + msg });
  process.exit(2);
}
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) {
  const key = argv[i].replace(/^--/, '');
  if (!argv[i].startsWith('--') || !(key in opts)) usage(`unknown argument ${argv[i]}`);
  if (argv[i + 1] === undefined) usage(`${argv[i]} needs a value`);
  opts[key] = argv[i + 1];
}
for (const k of ['gap-ms', 'timeout-ms']) {
  opts[k] = Number(opts[k]);
  if (!Number.isFinite(opts[k]) || opts[k] < 0) usage(`--${k} must be a non-negative number`);
}
if (!opts.url) usage('--url is required');
if (!opts.screenshot) usage('--screenshot is required');

// ------------------------------------------------- state, cleanup, and exit
const problems = [];
const result = { problems, first: null, second: null, screenshot: null };
const profile = mkdtempSync(join(tmpdir(), 'nfcs-dash-cdp-'));
let chrome = null, ws = null, stage = 'launching chromium', stderrTail = '', finished = false;

async function finish(code, error) {
  if (finished) return;
  finished = true;
  if (error) { result.error = error; log(error); if (stderrTail) log('chromium stderr tail:\n' + stderrTail); }
  if (chrome && chrome.exitCode === null && chrome.signalCode === null) {
    // Ask politely over CDP (the browser then closes its renderers), then signal.
    const exited = new Promise((r) => chrome.once('exit', () => r(true)));
    const waitExit = (ms) => Promise.race([exited, sleep(ms).then(() => false)]);
    if (ws?.readyState === 1) send('Browser.close').catch(() => {});
    if (!(await waitExit(ws?.readyState === 1 ? 3000 : 0))) chrome.kill('SIGTERM');
    if (!(await waitExit(3000))) { chrome.kill('SIGKILL'); await waitExit(2000); }
  }
  try { ws?.close(); } catch { /* already gone */ }
  try { rmSync(profile, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 }); } catch (e) { log('profile cleanup: ' + e.message); }
  process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(code));
}
setTimeout(() => finish(3, `timeout after ${opts['timeout-ms']} ms while ${stage}`), opts['timeout-ms']);
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => finish(1, `killed by ${sig} while ${stage}`));

// ---------------------------------------------------------------------- CDP
let nextId = 0;
const pending = new Map();
// One browser-level socket; page commands carry the flat-mode sessionId.
function send(method, params = {}, sessionId) {
  return new Promise((resolve, reject) => {
    const id = ++nextId;
    pending.set(id, { resolve, reject, method });
    ws.send(JSON.stringify(sessionId ? { id, method, params, sessionId } : { id, method, params }));
  });
}
async function evaluate(sessionId, expression) {
  const r = await send('Runtime.evaluate', { expression, returnByValue: true, awaitPromise: true }, sessionId);
  if (r.exceptionDetails) throw new Error('evaluate failed: ' + (r.exceptionDetails.exception?.description || r.exceptionDetails.text));
  return r.result.value;
}
function onEvent({ method, params }) {
  if (method === 'Runtime.exceptionThrown') {
    const d = params.exceptionDetails;
    problems.push(`exception: ${d.exception?.description || d.text} (${d.url || ''}:${d.lineNumber ?? ''})`);
  } else if (method === 'Runtime.consoleAPICalled' && (params.type === 'error' || params.type === 'assert')) {
    const text = params.args.map((a) => a.value ?? a.description ?? a.type).join(' ');
    problems.push(`console.${params.type}: ${text}`);
  } else if (method === 'Log.entryAdded' && params.entry.level === 'error') {
    const e = params.entry;
    problems.push(`log.error (${e.source}): ${e.text}${e.url ? ' ' + e.url : ''}`);
  }
}

// Installed before any page script runs: wraps the global uPlot constructor (a
// proxy, uPlot itself is untouched) so each chart instance can be found by its
// container id and its x values counted. Prefers what the page may expose itself:
// a data-points attribute on the chart container, then window.__nfcsCharts[id].
const CHART_PROBE = `(() => {
  const byId = Object.create(null); let real;
  Object.defineProperty(window, '__cdpCharts', { value: byId });
  Object.defineProperty(window, 'uPlot', { configurable: true, enumerable: true, get: () => real,
    set: (v) => { real = typeof v !== 'function' ? v : new Proxy(v, { construct(t, args, nt) {
      const u = Reflect.construct(t, args, nt); if (args[2] && args[2].id) byId[args[2].id] = u; return u; } }); } });
})();`;

const SNAPSHOT = `(() => {
  const q = (s) => document.querySelector(s), text = (s) => q(s) ? q(s).textContent.trim() : null;
  const hooks = [window.__nfcsCharts, window.__cdpCharts].filter(Boolean);
  const points = (id) => { const d = document.getElementById(id)?.dataset.points; if (d) return Number(d);
    for (const h of hooks) { const u = h[id]; const x = u && u.data && u.data[0];
    if (x && typeof x.length === 'number') return x.length; } return null; };
  const b = document.body.dataset;
  return {
    t_ms: Math.round(performance.now()), updates: Number(b.updates || 0), transport: b.transport || null,
    transport_text: text('#transport'), last_update: text('#last-update'), uptime: text('#node-uptime'),
    cards: Object.fromEntries(${JSON.stringify(CARDS)}.map((id) => { const e = document.getElementById(id);
      return [id, { text: e ? e.textContent.trim() : null, raw: e ? (e.dataset.raw ?? null) : null }]; })),
    alerts: [...document.querySelectorAll('#alerts .alert[data-alert-name]')].map((a) =>
      ({ name: a.dataset.alertName, active: a.classList.contains('alert-active') })),
    tiers: [...document.querySelectorAll('#tiers tr.tier-row')].map((r) => ({ tier: r.dataset.tier, state: r.dataset.state })),
    charts: Object.fromEntries(${JSON.stringify(CHARTS)}.map((id) => { const cs = document.querySelectorAll('#' + id + ' canvas');
      return [id, { canvases: cs.length, width: cs[0] ? cs[0].width : null, height: cs[0] ? cs[0].height : null, points: points(id) }]; })),
  };
})()`;

// --------------------------------------------------------------------- main
async function main() {
  if (typeof WebSocket !== 'function') throw new Error('no global WebSocket: run node >= 20 with --experimental-websocket');
  chrome = spawn(opts.chromium, ['--headless=new', '--no-sandbox', '--disable-gpu', '--remote-debugging-port=0',
    `--user-data-dir=${profile}`, '--window-size=1280,1000', 'about:blank'], { stdio: ['ignore', 'ignore', 'pipe'] });
  const browserWs = await new Promise((resolve, reject) => {
    chrome.once('error', (e) => reject(new Error(`cannot start ${opts.chromium}: ${e.message}`)));
    chrome.once('exit', (code, sig) => reject(new Error(`chromium exited early (code ${code}, signal ${sig})`)));
    chrome.stderr.setEncoding('utf8');
    let partial = '';
    chrome.stderr.on('data', (chunk) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop();
      for (const line of lines) {
        const m = /DevTools listening on (ws:\/\/\S+)/.exec(line);
        if (m) resolve(m[1]);
        // Keep a short tail for error reports, without the headless dbus noise.
        else if (line.trim() && !/dbus/i.test(line)) stderrTail = (stderrTail + line + '\n').slice(-2000);
      }
    });
  });
  log('browser at ' + browserWs);

  stage = 'connecting to the DevTools socket';
  ws = new WebSocket(browserWs);
  await new Promise((resolve, reject) => {
    ws.addEventListener('open', resolve, { once: true });
    ws.addEventListener('error', () => reject(new Error('websocket error connecting to ' + browserWs)), { once: true });
  });
  ws.addEventListener('close', () => { if (!finished) finish(1, 'DevTools socket closed while ' + stage); });
  ws.addEventListener('message', (ev) => {
    const m = JSON.parse(ev.data);
    const p = m.id !== undefined && pending.get(m.id);
    if (p) {
      pending.delete(m.id);
      if (m.error) p.reject(new Error(`${p.method}: ${m.error.message}`)); else p.resolve(m.result);
    } else if (m.method) onEvent(m);
  });

  stage = 'attaching to the page';
  const { targetInfos } = await send('Target.getTargets');
  let targetId = targetInfos.find((t) => t.type === 'page')?.targetId;
  if (!targetId) ({ targetId } = await send('Target.createTarget', { url: 'about:blank' }));
  const { sessionId } = await send('Target.attachToTarget', { targetId, flatten: true });
  for (const d of ['Runtime', 'Log', 'Page']) await send(`${d}.enable`, {}, sessionId);
  await send('Page.addScriptToEvaluateOnNewDocument', { source: CHART_PROBE }, sessionId);

  stage = 'navigating to ' + opts.url;
  const nav = await send('Page.navigate', { url: opts.url }, sessionId);
  if (nav.errorText) throw new Error(`navigation to ${opts.url} failed: ${nav.errorText}`);

  stage = 'waiting for body[data-ready="1"]';
  while (!(await evaluate(sessionId, 'document.body !== null && document.body.dataset.ready === "1"'))) await sleep(200);
  stage = 'taking the first snapshot';
  result.first = await evaluate(sessionId, SNAPSHOT);
  stage = `waiting ${opts['gap-ms']} ms between snapshots`;
  await sleep(opts['gap-ms']);
  stage = 'taking the second snapshot';
  result.second = await evaluate(sessionId, SNAPSHOT);

  stage = 'taking the screenshot';
  const { cssContentSize: size } = await send('Page.getLayoutMetrics', {}, sessionId);
  const shot = await send('Page.captureScreenshot', { format: 'png', captureBeyondViewport: true,
    clip: { x: 0, y: 0, width: Math.ceil(size.width), height: Math.ceil(size.height), scale: 1 } }, sessionId);
  writeFileSync(opts.screenshot, Buffer.from(shot.data, 'base64'));
  result.screenshot = opts.screenshot;
  stage = 'closing';
}

main().then(() => finish(0), (e) => finish(1, e.message));
