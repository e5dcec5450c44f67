// The farm page: "Copy" buttons for the agent's command line. <button data-copy="ID"> copies the
// text of the element with that id and says so in the next [data-copied] element.
export function startFarm() {
  document.addEventListener('click', async (e) => {
    const button = e.target.closest('button[data-copy]');
    if (!button) return;
    const source = document.getElementById(button.dataset.copy);
    const note = button.parentElement?.querySelector('[data-copied]');
    if (!source) return;
    try {
      await navigator.clipboard.writeText(source.textContent.trim());
      if (note) note.textContent = 'copied';
    } catch (_) {
      // No clipboard (plain HTTP on another host): select the text so Ctrl+C copies it.
      const range = document.createRange();
      range.selectNodeContents(source);
      const selection = getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      if (note) note.textContent = 'selected: press Ctrl+C';
    }
  });
}
