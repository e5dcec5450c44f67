// Live updates from the coordinator's one Server-Sent Events stream (/api/v1/events).
//
// A live region names the events it follows and where its fresh HTML comes from:
//   <section id="jobs-table" data-live="job-changed job-deleted" data-src="/jobs?part=table">
// optionally narrowed to one job or agent with data-live-job="7" / data-live-agent="3", and
// fetched at most every data-live-interval milliseconds (default 500).
// When such an event arrives the region is fetched again and
// replaced by the server-rendered HTML: the script never builds markup from event data.
// Every event is also re-sent on `document` as a `live:<type>` CustomEvent for page modules that
// change a single attribute (the frame grid's cells). A dropped stream reconnects with backoff
// (1 s doubling to 30 s) and then re-fetches every region, as does a `reset` event (the
// coordinator dropped events this page did not get).

const EVENTS_URL = '/api/v1/events';
const SESSION_URL = '/api/v1/session';
const TYPES = ['job-changed', 'job-deleted', 'frame-changed', 'agent-changed', 'presence'];
const MIN_INTERVAL_MS = 500;

let backoffMs = 1000;
let failures = 0;

function setStatus(state, text) {
  const el = document.getElementById('live-status');
  if (!el) return;
  el.dataset.state = state;
  el.textContent = text;
}

function matches(region, type, event) {
  const types = (region.dataset.live || '').split(/\s+/);
  if (!types.includes(type)) return false;
  const job = region.dataset.liveJob;
  if (job !== undefined && String(event.job) !== job) return false;
  const agent = region.dataset.liveAgent;
  if (agent !== undefined && String(event.agent) !== agent) return false;
  return true;
}

// Per region id: when it was last fetched and whether another fetch is due. Keyed by id, not
// by element, because every refresh replaces the element.
const timing = new Map();

function schedule(region) {
  const id = region.id;
  if (!id) return;
  let t = timing.get(id);
  if (!t) { t = { last: 0, timer: null, busy: false, again: false }; timing.set(id, t); }
  if (t.timer || t.busy) { t.again = true; return; }
  const interval = Number(region.dataset.liveInterval) || MIN_INTERVAL_MS;
  const wait = Math.max(0, t.last + interval - Date.now());
  t.timer = setTimeout(() => { t.timer = null; refresh(id, t); }, wait);
}

async function refresh(id, t) {
  const region = document.getElementById(id);
  if (!region) return;
  t.busy = true;
  t.again = false;
  t.last = Date.now();
  try {
    const response = await fetch(region.dataset.src, {
      headers: { Accept: 'text/html' },
      credentials: 'same-origin',
    });
    if (response.status === 401) { location.assign('/login?next=' + encodeURIComponent(location.pathname + location.search)); return; }
    if (response.status === 404 && region.dataset.gone) { location.assign(region.dataset.gone); return; }
    if (!response.ok) return;
    swap(region, await response.text());
  } catch (_) {
    // The stream's reconnect re-fetches everything.
  } finally {
    t.busy = false;
    const current = document.getElementById(id);
    if (t.again && current) schedule(current);
  }
}

// Replaces `region` by the first element of `html`, keeping keyboard focus and open <details>;
// returns the new element (null when nothing was replaced).
function swap(region, html) {
  const template = document.createElement('template');
  template.innerHTML = html;
  const fresh = template.content.firstElementChild;
  if (!fresh || !region.isConnected) return null;
  const focused = region.contains(document.activeElement) ? document.activeElement.id : null;
  for (const open of region.querySelectorAll('details[open][id]')) {
    fresh.querySelector('#' + CSS.escape(open.id))?.setAttribute('open', '');
  }
  region.replaceWith(fresh);
  if (focused) document.getElementById(focused)?.focus();
  document.dispatchEvent(new CustomEvent('live:swapped', { detail: fresh }));
  return fresh;
}

/// Re-fetches every live region of the page.
export function refreshAll() {
  for (const region of document.querySelectorAll('[data-live][data-src]')) schedule(region);
  document.dispatchEvent(new CustomEvent('live:resync'));
}

function onEvent(type, event) {
  for (const region of document.querySelectorAll('[data-live][data-src]')) {
    if (matches(region, type, event)) schedule(region);
  }
  document.dispatchEvent(new CustomEvent('live:' + type, { detail: event }));
}

function connect() {
  setStatus('connecting', 'connecting…');
  const source = new EventSource(EVENTS_URL);
  source.addEventListener('open', () => {
    if (failures > 0) refreshAll();
    failures = 0;
    backoffMs = 1000;
    setStatus('live', 'live');
  });
  source.addEventListener('error', async () => {
    source.close();
    failures += 1;
    setStatus('down', 'offline, retrying in ' + Math.round(backoffMs / 1000) + ' s');
    setTimeout(connect, backoffMs);
    backoffMs = Math.min(backoffMs * 2, 30000);
    try {
      const r = await fetch(SESSION_URL, { credentials: 'same-origin' });
      if (r.status === 401) location.assign('/login?next=' + encodeURIComponent(location.pathname + location.search));
    } catch (_) { /* the coordinator is away; keep retrying */ }
  });
  source.addEventListener('reset', refreshAll);
  for (const type of TYPES) {
    source.addEventListener(type, (e) => {
      let event;
      try { event = JSON.parse(e.data); } catch (_) { return; }
      onEvent(type, event);
    });
  }
}

/// Starts the stream on pages of a signed-in person.
export function startLive() {
  if (!document.getElementById('live-status')) return;
  connect();
}
