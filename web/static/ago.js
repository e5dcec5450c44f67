// Keeps time labels current: <time data-ago datetime="2026-11-22T10:00:00Z"> reads "12 s ago",
// <time data-until datetime="…"> reads "in 4 min". Updated every second and after live swaps.

function span(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return s + ' s';
  if (s < 3600) return Math.round(s / 60) + ' min';
  if (s < 86400) return (s / 3600).toFixed(s < 36000 ? 1 : 0).replace(/\.0$/, '') + ' h';
  return Math.round(s / 86400) + ' d';
}

function tick() {
  const now = Date.now();
  for (const el of document.querySelectorAll('time[data-ago]')) {
    const s = (now - Date.parse(el.dateTime)) / 1000;
    el.textContent = s < 2 ? 'just now' : span(s) + ' ago';
  }
  for (const el of document.querySelectorAll('time[data-until]')) {
    const s = (Date.parse(el.dateTime) - now) / 1000;
    el.textContent = s <= 0 ? 'any moment' : 'in ' + span(s);
  }
}

export function startClock() {
  tick();
  setInterval(tick, 1000);
  document.addEventListener('live:swapped', tick);
}
