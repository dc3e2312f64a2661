// nfcs-bench serve: live dashboard.
//
// Plain JS, no build step. Loaded with `defer` after /assets/uPlot.iife.min.js,
// so the DOM is parsed and the global `uPlot` is defined when this runs.
// Everything is written with textContent / classList (no innerHTML, no inline
// styles), so the page works under `Content-Security-Policy: default-src 'self'`.
//
// Data sources:
//   GET /api/summary  -> summary object
//   GET /api/history  -> {interval_s, points: [...]}, oldest first
//   SSE /api/stream   -> event "sample": {point, summary}
// Transport: SSE first; if no sample arrives for STALE_MS, poll both endpoints
// every POLL_MS until the stream delivers again (STALE_MS grows with the
// node's sample interval, /api/history's interval_s). `?transport=polling`
// skips the stream altogether.
'use strict';

(() => {
  const MAX_POINTS = 600;
  const POLL_MS = 2000;
  const STALE_MS = 5000;
  const SSE_RETRY_MS = 5000;
  const FETCH_TIMEOUT_MS = 5000;
  const MIB = 1024 * 1024;
  const DASH = '\u2013'; // "–"

  const COMPONENTS = [
    {
      key: 'constitutional',
      title: 'Constitutional',
      fields: [
        ['hit_ratio', 'hit ratio', fmtPercent],
        ['p95_s', 'p95', fmtMsUnit],
        ['evaluations', 'evaluations', fmtInt],
      ],
    },
    {
      key: 'mathematical',
      title: 'Mathematical',
      fields: [
        ['cgl_fps', 'CGL FPS', (v) => fmtNum(v, 1)],
        ['grid_size', 'grid size', fmtInt],
        ['kuramoto_sync_s', 'Kuramoto sync', fmtMsUnit],
        ['kuramoto_oscillators', 'oscillators', fmtInt],
      ],
    },
    {
      key: 'esc_system',
      title: 'ESC system',
      fields: [
        ['p95_s', 'p95', fmtMsUnit],
        ['lookups', 'lookups', fmtInt],
      ],
    },
    {
      key: 'orchestrator',
      title: 'Orchestrator',
      fields: [
        ['frequency_hz', 'frequency', (v) => withUnit(fmtNum(v, 2), 'Hz')],
        ['target_hz', 'target', (v) => withUnit(fmtNum(v, 2), 'Hz')],
        ['latency_p95_s', 'latency p95', fmtMsUnit],
        ['missed_ticks', 'missed ticks', fmtInt],
        ['module_failures', 'module failures', fmtInt],
      ],
    },
  ];
  const KNOWN_STATUS = ['ok', 'degraded', 'failing', 'not_running'];
  const KNOWN_TIER_STATE = ['running', 'disabled', 'not_running', 'unavailable'];

  // ------------------------------------------------------------------ format

  function isNum(v) {
    return typeof v === 'number' && Number.isFinite(v);
  }
  function fmtNum(v, digits) {
    return isNum(v) ? v.toFixed(digits) : DASH;
  }
  function fmtInt(v) {
    return isNum(v) ? Math.round(v).toLocaleString('en-US') : DASH;
  }
  function fmtPercent(v) {
    return isNum(v) ? (v * 100).toFixed(1) + ' %' : DASH;
  }
  function fmtMs(seconds) {
    if (!isNum(seconds)) return DASH;
    const ms = seconds * 1000;
    if (ms !== 0 && Math.abs(ms) < 0.1) return ms.toFixed(3);
    if (Math.abs(ms) < 10) return ms.toFixed(2);
    return ms.toFixed(1);
  }
  function fmtMsUnit(seconds) {
    return withUnit(fmtMs(seconds), 'ms');
  }
  function withUnit(text, unit) {
    return text === DASH ? DASH : text + ' ' + unit;
  }
  function fmtMib(bytes) {
    return isNum(bytes) ? (bytes / MIB).toFixed(1) : DASH;
  }
  function pad2(n) {
    return String(n).padStart(2, '0');
  }
  function fmtClock(unixSeconds) {
    if (!isNum(unixSeconds)) return DASH;
    const d = new Date(unixSeconds * 1000);
    return pad2(d.getHours()) + ':' + pad2(d.getMinutes()) + ':' + pad2(d.getSeconds());
  }
  function fmtDuration(seconds) {
    if (!isNum(seconds) || seconds < 0) return DASH;
    const s = Math.floor(seconds);
    const d = Math.floor(s / 86400);
    const h = Math.floor((s % 86400) / 3600);
    const m = Math.floor((s % 3600) / 60);
    const sec = s % 60;
    if (d > 0) return d + 'd ' + pad2(h) + 'h ' + pad2(m) + 'm';
    if (h > 0) return h + 'h ' + pad2(m) + 'm ' + pad2(sec) + 's';
    if (m > 0) return m + 'm ' + pad2(sec) + 's';
    return seconds.toFixed(1) + ' s';
  }
  function str(v) {
    return v === null || v === undefined || v === '' ? DASH : String(v);
  }
  // Turn an arbitrary server string into a safe CSS class suffix.
  function classToken(v, known) {
    const s = typeof v === 'string' ? v.toLowerCase() : '';
    if (known && !known.includes(s)) return 'unknown';
    return /^[a-z0-9_-]+$/.test(s) ? s : 'unknown';
  }
  function obj(v) {
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? v : {};
  }
  function arr(v) {
    return Array.isArray(v) ? v : [];
  }

  // ------------------------------------------------------------------- DOM

  const $ = (id) => document.getElementById(id);

  function el(tag, className, text) {
    const e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }
  function setText(id, text) {
    const e = $(id);
    if (e && e.textContent !== text) e.textContent = text;
  }
  // Card value: text plus the raw number in data-raw ("" when unknown).
  function setValue(id, text, raw) {
    const e = $(id);
    if (!e) return;
    if (e.textContent !== text) e.textContent = text;
    e.dataset.raw = isNum(raw) ? String(raw) : '';
  }

  function bumpUpdates() {
    const n = (parseInt(document.body.dataset.updates || '0', 10) || 0) + 1;
    document.body.dataset.updates = String(n);
  }

  function setError(msg) {
    setText('error', msg || '');
  }

  // --------------------------------------------------------------- summary

  function renderSummary(summary) {
    const s = obj(summary);
    const node = obj(s.node);
    const sys = obj(s.system_performance);
    const cache = obj(s.cache_performance);

    setText('node-name', typeof node.name === 'string' && node.name ? node.name : 'NFCS node');
    setText('node-version', str(node.version));
    setText('node-uptime', fmtDuration(node.uptime_s));
    if (typeof node.name === 'string' && node.name) {
      const t = node.name + ' \u00b7 NFCS dashboard';
      if (document.title !== t) document.title = t;
    }

    setValue('overall-score', fmtNum(sys.overall_score, 1), sys.overall_score);
    setValue('coordination-frequency', fmtNum(sys.coordination_frequency, 2), sys.coordination_frequency);
    setValue('response-p95', fmtMs(sys.response_time_p95), sys.response_time_p95);
    setValue('memory-efficiency', isNum(sys.memory_efficiency) ? (sys.memory_efficiency * 100).toFixed(1) : DASH,
      sys.memory_efficiency);
    setValue('hit-ratio', isNum(cache.hit_ratio) ? (cache.hit_ratio * 100).toFixed(1) : DASH, cache.hit_ratio);
    setText('hit-ratio-reads', isNum(cache.reads) ? fmtInt(cache.reads) + ' reads in window' : '');
    setValue('eviction-rate', fmtNum(cache.eviction_rate, 2), cache.eviction_rate);

    const used = cache.memory_usage;
    const cap = cache.memory_capacity;
    let usageText = fmtMib(used);
    if (isNum(cap)) usageText += ' / ' + fmtMib(cap);
    setValue('memory-usage', usageText, used);
    const meter = $('memory-usage-meter');
    const frac = isNum(used) && isNum(cap) && cap > 0 ? Math.min(1, Math.max(0, used / cap)) : 0;
    if (meter) meter.value = frac;
    setText('memory-usage-capacity',
      isNum(used) && isNum(cap) && cap > 0 ? (100 * used / cap).toFixed(1) + ' % used' : '');

    renderScoreParts(obj(s.score).parts);
    renderAlerts(s.alerts);
    renderTiers(s.tiers);
    renderComponents(obj(s.component_performance));

    setText('generated-at', isNum(s.generated_at) ? 'generated ' + fmtClock(s.generated_at) : '');
  }

  function renderScoreParts(parts) {
    const box = $('score-parts');
    if (!box) return;
    const items = arr(parts)
      .map(obj)
      .filter((p) => typeof p.name === 'string')
      .map((p) => p.name.replace(/_/g, ' ') + ' ' + (isNum(p.score) ? (p.score * 100).toFixed(0) + '%' : DASH));
    const text = items.join(' \u00b7 ');
    if (box.textContent !== text) box.textContent = text;
    box.title = items.join('\n');
  }

  function renderAlerts(alerts) {
    const box = $('alerts');
    if (!box) return;
    const list = arr(alerts).map(obj);
    const active = list.filter((a) => a.active === true);
    const cleared = list.filter((a) => a.active !== true);
    const frag = document.createDocumentFragment();

    if (active.length === 0) frag.appendChild(el('div', 'empty', 'No active alerts'));
    for (const a of active) frag.appendChild(alertElement(a, true));
    for (const a of cleared) frag.appendChild(alertElement(a, false));
    box.replaceChildren(frag);
    box.dataset.active = String(active.length);
  }

  function alertElement(a, isActive) {
    const sev = classToken(a.severity) === 'unknown' ? 'info' : classToken(a.severity);
    const item = el('div', 'alert ' + (isActive ? 'alert-active' : 'alert-cleared') + ' severity-' + sev);
    item.dataset.alertName = typeof a.name === 'string' ? a.name : '';
    item.dataset.severity = sev;

    const head = el('div', 'alert-head');
    head.appendChild(el('span', 'alert-severity', sev));
    head.appendChild(el('span', 'alert-name', str(a.name)));
    if (typeof a.subject === 'string' && a.subject) head.appendChild(el('span', 'alert-subject', a.subject));
    const time = isActive
      ? 'since ' + fmtClock(a.started_at)
      : 'cleared ' + fmtClock(a.cleared_at) + ' (since ' + fmtClock(a.started_at) + ')';
    head.appendChild(el('span', 'alert-time', time));
    item.appendChild(head);

    if (a.message !== null && a.message !== undefined && a.message !== '') {
      item.appendChild(el('div', 'alert-message', String(a.message)));
    }
    if (isNum(a.value) || isNum(a.threshold)) {
      item.appendChild(el('div', 'alert-values',
        'value ' + fmtAlertNum(a.value) + ' vs threshold ' + fmtAlertNum(a.threshold)));
    }
    return item;
  }

  function fmtAlertNum(v) {
    if (!isNum(v)) return DASH;
    if (v === 0) return '0';
    const abs = Math.abs(v);
    if (abs >= 1000 || abs < 0.001) return v.toExponential(2);
    return String(Number(v.toPrecision(4)));
  }

  function renderTiers(tiers) {
    const body = $('tiers');
    if (!body) return;
    const list = arr(tiers).map(obj);
    const frag = document.createDocumentFragment();
    if (list.length === 0) {
      const tr = el('tr', 'empty-row');
      const td = el('td', null, 'No tiers reported');
      td.colSpan = 3;
      tr.appendChild(td);
      frag.appendChild(tr);
    }
    for (const t of list) {
      const state = classToken(t.state, KNOWN_TIER_STATE);
      const tr = el('tr', 'tier-row');
      tr.dataset.tier = typeof t.name === 'string' ? t.name : '';
      tr.dataset.state = typeof t.state === 'string' ? t.state : '';
      tr.appendChild(el('td', 'tier-name', str(t.name)));
      const stateTd = el('td');
      stateTd.appendChild(el('span', 'badge tier-badge tier-' + state, typeof t.state === 'string' ? t.state.replace(/_/g, ' ') : DASH));
      tr.appendChild(stateTd);
      tr.appendChild(el('td', 'tier-reason', t.reason === null || t.reason === undefined ? '' : String(t.reason)));
      frag.appendChild(tr);
    }
    body.replaceChildren(frag);
  }

  function renderComponents(comps) {
    const box = $('components');
    if (!box) return;
    const frag = document.createDocumentFragment();
    for (const def of COMPONENTS) {
      const c = obj(comps[def.key]);
      const status = classToken(c.status, KNOWN_STATUS);
      const panel = el('div', 'component component-' + status);
      panel.id = 'component-' + def.key;
      panel.dataset.component = def.key;
      panel.dataset.status = typeof c.status === 'string' ? c.status : '';

      const head = el('div', 'component-head');
      head.appendChild(el('span', 'component-title', def.title));
      head.appendChild(el('span', 'badge component-status status-' + status,
        typeof c.status === 'string' ? c.status.replace(/_/g, ' ') : 'unknown'));
      panel.appendChild(head);

      const dl = el('dl');
      for (const [field, label, fmt] of def.fields) {
        dl.appendChild(el('dt', null, label));
        const dd = el('dd', 'field-' + field, fmt(c[field]));
        dd.dataset.field = field;
        dl.appendChild(dd);
      }
      panel.appendChild(dl);

      if (c.reason !== null && c.reason !== undefined && c.reason !== '') {
        panel.appendChild(el('div', 'component-reason', String(c.reason)));
      }
      frag.appendChild(panel);
    }
    box.replaceChildren(frag);
  }

  // --------------------------------------------------------------- history

  // Columns, one array per series; index 0 is time (unix seconds).
  const hist = {
    t: [],
    hit: [],
    coordHz: [],
    coordP95Ms: [],
    respP95Ms: [],
    resMib: [],
    allocMib: [],
  };

  function num(v, scale) {
    return isNum(v) ? v * scale : null;
  }

  function pushPoint(p) {
    const pt = obj(p);
    if (!isNum(pt.t)) return false;
    const n = hist.t.length;
    if (n > 0 && pt.t <= hist.t[n - 1]) {
      if (pt.t === hist.t[n - 1]) {
        // Same timestamp again (e.g. the poll and the stream overlap): replace.
        hist.t.pop(); hist.hit.pop(); hist.coordHz.pop(); hist.coordP95Ms.pop();
        hist.respP95Ms.pop(); hist.resMib.pop(); hist.allocMib.pop();
      } else {
        return false; // older than what we have: ignore, x must stay sorted
      }
    }
    hist.t.push(pt.t);
    hist.hit.push(num(pt.hit_ratio, 100));
    hist.coordHz.push(num(pt.coordination_hz, 1));
    hist.coordP95Ms.push(num(pt.coordination_p95_s, 1000));
    hist.respP95Ms.push(num(pt.response_p95_s, 1000));
    hist.resMib.push(num(pt.memory_resident_bytes, 1 / MIB));
    hist.allocMib.push(num(pt.memory_allocated_bytes, 1 / MIB));
    return true;
  }

  function trimHistory() {
    const extra = hist.t.length - MAX_POINTS;
    if (extra > 0) {
      for (const k of Object.keys(hist)) hist[k].splice(0, extra);
    }
  }

  // Replace with a full history; keep any newer points we already hold.
  function loadHistory(h) {
    const interval = obj(h).interval_s;
    if (isNum(interval) && interval > 0) sampleIntervalMs = interval * 1000;
    const points = arr(obj(h).points).filter((p) => isNum(obj(p).t)).slice().sort((a, b) => a.t - b.t);
    const keepFrom = points.length ? points[points.length - 1].t : -Infinity;
    const newer = [];
    for (let i = 0; i < hist.t.length; i++) {
      if (hist.t[i] > keepFrom) newer.push(i);
    }
    const carry = newer.map((i) => ({
      t: hist.t[i], hit: hist.hit[i], coordHz: hist.coordHz[i], coordP95Ms: hist.coordP95Ms[i],
      respP95Ms: hist.respP95Ms[i], resMib: hist.resMib[i], allocMib: hist.allocMib[i],
    }));
    for (const k of Object.keys(hist)) hist[k] = [];
    for (const p of points) pushPoint(p);
    for (const c of carry) {
      for (const k of Object.keys(hist)) hist[k].push(c[k]);
    }
    trimHistory();
    updateCharts();
  }

  function appendPoint(p) {
    if (pushPoint(p)) {
      trimHistory();
      updateCharts();
    }
  }

  // ---------------------------------------------------------------- charts

  const charts = [];
  const CHART_HEIGHT = 200;
  const COLORS = {
    blue: '#2f6fdf',
    green: '#1f8a4c',
    orange: '#d9730d',
    purple: '#7b4fc9',
    grid: '#e6e9ee',
    axis: '#5a6573',
  };

  function axis(extra) {
    return Object.assign({
      stroke: COLORS.axis,
      grid: { stroke: COLORS.grid, width: 1 },
      ticks: { stroke: COLORS.grid, width: 1 },
      font: '11px system-ui, sans-serif',
    }, extra || {});
  }

  // Auto range with a little headroom, never below `floor` (and never above
  // `ceil` when given); a flat or empty series still gets a sensible span.
  function paddedRange(floor, ceil, emptyMax) {
    return (u, min, max) => {
      if (!isNum(min) || !isNum(max)) return [floor, emptyMax];
      let lo = min;
      let hi = max;
      const span = hi - lo;
      const padBy = span > 0 ? span * 0.1 : Math.max(Math.abs(hi) * 0.1, 1e-3);
      lo -= padBy;
      hi += padBy;
      if (isNum(floor)) lo = Math.max(floor, lo);
      if (isNum(ceil)) hi = Math.min(ceil, hi);
      if (hi <= lo) hi = lo + 1;
      return [lo, hi];
    };
  }

  function valueFmt(digits, unit) {
    return (u, v) => (isNum(v) ? v.toFixed(digits) + (unit ? ' ' + unit : '') : DASH);
  }

  const CHART_DEFS = [
    {
      id: 'chart-hit-ratio',
      data: () => [hist.t, hist.hit],
      opts: {
        scales: { x: { time: true }, y: { range: paddedRange(0, 100, 100) } },
        series: [
          {},
          { label: 'hit ratio', stroke: COLORS.green, fill: 'rgba(31,138,76,0.08)', width: 2, value: valueFmt(1, '%') },
        ],
        axes: [axis(), axis({ values: ticks('%'), size: 56 })],
      },
    },
    {
      id: 'chart-coordination',
      data: () => [hist.t, hist.coordHz, hist.coordP95Ms],
      opts: {
        scales: { x: { time: true }, hz: { range: paddedRange(0, null, 12) }, ms: { range: paddedRange(0, null, 50) } },
        series: [
          {},
          { label: 'frequency', scale: 'hz', stroke: COLORS.blue, width: 2, value: valueFmt(2, 'Hz') },
          { label: 'p95 latency', scale: 'ms', stroke: COLORS.orange, width: 1.5, dash: [6, 3], value: valueFmt(2, 'ms') },
        ],
        axes: [
          axis(),
          axis({ scale: 'hz', values: ticks(' Hz'), size: 64 }),
          axis({ scale: 'ms', side: 1, grid: { show: false }, values: ticks(' ms'), size: 68 }),
        ],
      },
    },
    {
      id: 'chart-response',
      data: () => [hist.t, hist.respP95Ms],
      opts: {
        scales: { x: { time: true }, y: { range: paddedRange(0, null, 10) } },
        series: [
          {},
          { label: 'response p95', stroke: COLORS.purple, fill: 'rgba(123,79,201,0.08)', width: 2, value: valueFmt(3, 'ms') },
        ],
        axes: [axis(), axis({ values: ticks(' ms'), size: 68 })],
      },
    },
    {
      id: 'chart-memory',
      data: () => [hist.t, hist.resMib, hist.allocMib],
      opts: {
        scales: { x: { time: true }, y: { range: paddedRange(0, null, 100) } },
        series: [
          {},
          { label: 'resident', stroke: COLORS.blue, width: 2, value: valueFmt(1, 'MiB') },
          { label: 'allocated', stroke: COLORS.orange, width: 2, value: valueFmt(1, 'MiB') },
        ],
        axes: [axis(), axis({ values: ticks(''), size: 60 })],
      },
    },
  ];

  // Axis tick labels: as many decimals as the tick step needs, so close
  // ticks never print the same label.
  function ticks(unit) {
    return (u, vals) => {
      const step = vals.length > 1 ? Math.abs(vals[1] - vals[0]) : 0;
      let digits = 0;
      if (step > 0 && Number.isFinite(step)) {
        while (digits < 6 && Math.abs(Math.round(step * 10 ** digits) - step * 10 ** digits) > 1e-6) digits++;
      }
      return vals.map((v) => (isNum(v) ? v.toFixed(digits) + (unit ? unit : '') : ''));
    };
  }

  function chartWidth(container) {
    return Math.max(200, Math.floor(container.clientWidth || 400));
  }

  function initCharts() {
    if (typeof window.uPlot !== 'function') {
      setError('chart library not loaded');
      return;
    }
    for (const def of CHART_DEFS) {
      const container = $(def.id);
      if (!container) continue;
      const opts = Object.assign({
        width: chartWidth(container),
        height: CHART_HEIGHT,
        cursor: { drag: { x: false, y: false } },
        legend: { show: true, live: true },
      }, def.opts);
      const plot = new window.uPlot(opts, def.data(), container);
      charts.push({ def, plot, container });
    }
    let pending = 0;
    const onResize = () => {
      if (pending) return;
      pending = window.requestAnimationFrame(() => {
        pending = 0;
        for (const c of charts) {
          const w = chartWidth(c.container);
          if (w !== c.plot.width) c.plot.setSize({ width: w, height: CHART_HEIGHT });
        }
      });
    };
    window.addEventListener('resize', onResize);
    if (typeof window.ResizeObserver === 'function') {
      const ro = new window.ResizeObserver(onResize);
      for (const c of charts) ro.observe(c.container);
    }
  }

  let chartFrame = 0;
  function updateCharts() {
    if (chartFrame || charts.length === 0) return;
    // Coalesce bursts (history load + stream point) into one redraw.
    chartFrame = window.requestAnimationFrame(() => {
      chartFrame = 0;
      for (const c of charts) c.plot.setData(c.def.data());
    });
  }

  // ------------------------------------------------------------- transport

  let transport = '';
  function setTransport(mode) {
    if (transport === mode) return;
    transport = mode;
    const e = $('transport');
    if (!e) return;
    e.textContent = mode === 'sse' ? 'live (SSE)' : 'polling';
    e.className = 'transport transport-' + mode;
    document.body.dataset.transport = mode;
  }

  function markReceived() {
    setText('last-update', fmtClock(Date.now() / 1000));
    setError('');
  }

  function applySummary(summary) {
    if (summary === null || typeof summary !== 'object') return;
    renderSummary(summary);
    markReceived();
    bumpUpdates();
    if (document.body.dataset.ready !== '1') document.body.dataset.ready = '1';
  }

  async function getJson(url) {
    const ctrl = typeof AbortController === 'function' ? new AbortController() : null;
    const timer = ctrl ? setTimeout(() => ctrl.abort(), FETCH_TIMEOUT_MS) : 0;
    try {
      const res = await fetch(url, { cache: 'no-store', headers: { Accept: 'application/json' }, signal: ctrl ? ctrl.signal : undefined });
      if (!res.ok) throw new Error(url + ': HTTP ' + res.status);
      return await res.json();
    } finally {
      if (timer) clearTimeout(timer);
    }
  }

  async function fetchSummary() {
    try {
      applySummary(await getJson('/api/summary'));
    } catch (err) {
      setError('summary: ' + errText(err));
    }
  }

  async function fetchHistory() {
    try {
      loadHistory(await getJson('/api/history'));
      markReceived();
      bumpUpdates();
    } catch (err) {
      setError('history: ' + errText(err));
    }
  }

  function errText(err) {
    return err && err.message ? err.message : String(err);
  }

  // Polling: a self-rescheduling loop so requests never overlap.
  let polling = false;
  let pollTimer = 0;
  let pollGen = 0; // bumps on every start, so a stale loop stops itself
  async function pollOnce(gen) {
    pollTimer = 0;
    if (!polling || gen !== pollGen) return;
    await Promise.all([fetchSummary(), fetchHistory()]);
    if (polling && gen === pollGen) pollTimer = setTimeout(pollOnce, POLL_MS, gen);
  }
  function startPolling() {
    setTransport('polling');
    if (polling) return;
    polling = true;
    pollGen += 1;
    pollOnce(pollGen);
  }
  function stopPolling() {
    polling = false;
    pollGen += 1;
    if (pollTimer) clearTimeout(pollTimer);
    pollTimer = 0;
  }

  // SSE with a watchdog: no sample for STALE_MS -> poll; a closed stream is
  // reopened every SSE_RETRY_MS; the next sample stops polling again.
  let es = null;
  let esOpenedAt = 0;
  let lastSampleAt = 0;
  let sampleIntervalMs = 1000; // from /api/history's interval_s
  // A node sampling slower than every 2 s must not look stalled.
  function staleMs() {
    return Math.max(STALE_MS, 2.5 * sampleIntervalMs);
  }

  function openStream() {
    if (es) {
      try { es.close(); } catch (_) { /* ignore */ }
    }
    esOpenedAt = Date.now();
    try {
      es = new window.EventSource('/api/stream');
    } catch (_) {
      es = null;
      return;
    }
    es.addEventListener('sample', onSample);
    es.addEventListener('error', onStreamError);
  }

  // A stream the browser closed for good (HTTP error, wrong content type)
  // will not recover by itself: poll at once. While the browser is merely
  // reconnecting (readyState CONNECTING) the watchdog's grace period applies.
  function onStreamError() {
    if (es && es.readyState === 2 && !polling) startPolling();
  }

  function onSample(ev) {
    let msg;
    try {
      msg = JSON.parse(ev.data);
    } catch (_) {
      return; // malformed event: ignore, the watchdog decides about fallback
    }
    lastSampleAt = Date.now();
    if (polling) stopPolling();
    setTransport('sse');
    const m = obj(msg);
    if (m.point) appendPoint(m.point);
    if (m.summary) {
      applySummary(m.summary);
    } else {
      markReceived();
      bumpUpdates();
    }
  }

  function watchdog() {
    const now = Date.now();
    const closed = !es || es.readyState === 2; // EventSource.CLOSED
    const stale = now - lastSampleAt > staleMs();
    // Reopen a stream the browser gave up on, or one that is open but silent.
    if ((closed && now - esOpenedAt >= SSE_RETRY_MS) || (stale && now - esOpenedAt >= 2 * staleMs())) {
      openStream();
    }
    if (stale && !polling) startPolling();
  }

  // ------------------------------------------------------------------ start

  // `/dashboard?transport=polling` never opens the stream: for proxies that
  // break server-sent events, and for headless tests run with
  // --virtual-time-budget (an open stream keeps virtual time from advancing).
  function forcePolling() {
    try {
      return new URLSearchParams(window.location.search).get('transport') === 'polling';
    } catch (_) {
      return false;
    }
  }

  function start() {
    document.body.dataset.updates = document.body.dataset.updates || '0';
    initCharts();
    // First paint straight from the REST endpoints, whatever the transport.
    fetchHistory();
    if (typeof window.EventSource === 'function' && !forcePolling()) {
      setTransport('sse');
      lastSampleAt = Date.now();
      fetchSummary();
      openStream();
      setInterval(watchdog, 1000);
    } else {
      startPolling();
    }
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
})();
