// The farm page. Each PC's card refreshes itself from the live stream; the list of PCs is
// refreshed only when an event names a PC the page does not show yet (a new enrolment), so an
// admin's typing in a rename field is never replaced by a refresh.
// "Copy" buttons: <button data-copy="ID"> copies the text of the element with that id and says
// so in the next [data-copied] element.
import { refreshAll } from './live.js';

function onAgentChanged(e) {
  const list = document.getElementById('pcs');
  const agent = e.detail && e.detail.agent;
  if (!list || agent === undefined) return;
  if (!document.getElementById('pc-' + agent)) refreshAll();
}

async function onClick(e) {
  const button = e.target.closest('button[data-copy]');
  if (!button) return;
  const source = document.getElementById(button.dataset.copy);
  const note = button.parentElement?.querySelector('[data-copied]');
  if (!source) return;
  try {
    await navigator.clipboard.writeText(source.textContent.trim());
    if (note) note.textContent = 'copied';
  } catch (_) {
    // No clipboard (plain HTTP from another host): select the text so Ctrl+C copies it.
    const range = document.createRange();
    range.selectNodeContents(source);
    const selection = getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    if (note) note.textContent = 'selected: press Ctrl+C';
  }
}

export function startFarm() {
  document.addEventListener('live:agent-changed', onAgentChanged);
  document.addEventListener('click', onClick);
}
