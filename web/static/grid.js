// The job page's frame grid: cells follow `frame-changed` events one attribute at a time (the
// whole grid is re-fetched from the server on `job-changed`, at most every 1.5 s); pointing at or
// focusing a cell shows that frame's server-rendered detail; clicking (or Enter/Space) selects
// it for "Re-render selected frames", which sends the selection as `7,12-15`.

const STATES = new Set(['queued', 'rendering', 'done', 'failed']);
const selected = new Set();
let shown = null;
let hoverTimer = null;

function grid() { return document.getElementById('frame-grid'); }

// Frame numbers as the API's list: 1-3,7
function asRanges(frames) {
  const sorted = [...frames].sort((a, b) => a - b);
  const parts = [];
  for (let i = 0; i < sorted.length; i++) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j] + 1) j++;
    parts.push(i === j ? String(sorted[i]) : `${sorted[i]}-${sorted[j]}`);
    i = j;
  }
  return parts.join(',');
}

function syncSelection() {
  const g = grid();
  if (!g) return;
  for (const cell of g.querySelectorAll('.cell[data-frame]')) {
    cell.setAttribute('aria-pressed', selected.has(Number(cell.dataset.frame)) ? 'true' : 'false');
  }
  const input = g.querySelector('form.retry-selected input[name="frames"]');
  const button = document.getElementById('retry-selected');
  if (input) input.value = asRanges(selected);
  if (button) {
    button.disabled = selected.size === 0;
    button.textContent = selected.size === 0 ? 'Re-render selected frames'
      : `Re-render ${selected.size} selected frame${selected.size === 1 ? '' : 's'}`;
  }
}

async function showDetail(frame) {
  const g = grid();
  if (!g || frame == null) return;
  shown = frame;
  const url = `${location.pathname}?part=frame&frame=${encodeURIComponent(frame)}`;
  try {
    const r = await fetch(url, { headers: { Accept: 'text/html' }, credentials: 'same-origin' });
    if (!r.ok || shown !== frame) return;
    const template = document.createElement('template');
    template.innerHTML = await r.text();
    const fresh = template.content.firstElementChild;
    document.getElementById('frame-detail')?.replaceWith(fresh);
  } catch (_) { /* shown again on the next pointing */ }
}

function cellOf(target) {
  const cell = target.closest?.('.cell[data-frame]');
  return cell && grid()?.contains(cell) ? cell : null;
}

export function startGrid() {
  document.addEventListener('click', (e) => {
    const g = grid();
    if (!g) return;
    const choose = e.target.closest('button[data-select]');
    if (choose && g.contains(choose)) {
      if (choose.dataset.select === 'none') selected.clear();
      else for (const c of g.querySelectorAll(`.cell[data-state="${choose.dataset.select}"]`)) selected.add(Number(c.dataset.frame));
      syncSelection();
      return;
    }
    const cell = cellOf(e.target);
    if (!cell) return;
    const frame = Number(cell.dataset.frame);
    clearTimeout(hoverTimer); // the click shows the detail; the pointing need not fetch it again
    if (selected.has(frame)) selected.delete(frame); else selected.add(frame);
    syncSelection();
    showDetail(frame);
  });
  const point = (e) => {
    const cell = cellOf(e.target);
    if (!cell) return;
    clearTimeout(hoverTimer);
    hoverTimer = setTimeout(() => showDetail(Number(cell.dataset.frame)), 120);
  };
  document.addEventListener('mouseover', point);
  document.addEventListener('focusin', point);
  document.addEventListener('live:frame-changed', (e) => {
    const g = grid();
    const ev = e.detail;
    if (!g || String(ev.job) !== g.dataset.job || !STATES.has(ev.state)) return;
    const cell = document.getElementById('f-' + ev.frame);
    if (!cell) return;
    cell.dataset.state = ev.state;
    cell.title = `frame ${ev.frame}: ${ev.state}`;
    if (shown === ev.frame) showDetail(ev.frame);
  });
  document.addEventListener('live:swapped', (e) => {
    if (e.detail?.id !== 'frame-grid') return;
    // The fresh grid has the states; the selection and the shown frame's detail are ours.
    syncSelection();
    if (shown != null) showDetail(shown);
  });
  document.addEventListener('api:done', (e) => {
    if (!e.target.classList?.contains('retry-selected')) return;
    selected.clear();
    syncSelection();
  });
}
