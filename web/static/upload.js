// The Submit pages.
// Upload (<form data-upload action="/api/v1/uploads" data-next="/submit/"> with
// <input type=file data-upload-file> and <input type=file data-upload-ini>): sends the chosen
// scene file (and .ini) with XMLHttpRequest, because fetch() cannot report upload progress;
// shows the bytes sent in a <progress>, can be cancelled, and opens data-next + the upload's
// id when the coordinator has inspected it. A refusal is shown next to the field it concerns
// (the file field when it names none).
// Inspection (<select data-scene-choice>): choosing another scene fills the inputs marked
// data-scene-value="frames|fps" and the facts marked data-scene-fact="frames|size|output|engine" from the
// chosen option's data- attributes, which the server rendered.
import { CSRF_HEADER, csrfToken, showError, clearErrors } from './forms.js';

function bytes(n) {
  if (n < 1000) return `${n} B`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let value = n / 1000;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) { value /= 1000; unit += 1; }
  return `${value.toFixed(1)} ${units[unit]}`;
}

function wantsIni(name) {
  const lower = name.toLowerCase();
  return lower.endsWith('.pov') || lower.endsWith('.zip');
}

function startUpload(form) {
  const file = form.querySelector('input[data-upload-file]');
  const ini = form.querySelector('input[data-upload-ini]');
  const iniLabel = form.querySelector('[data-ini]');
  const box = form.querySelector('[data-progress]');
  const bar = box.querySelector('progress');
  const text = box.querySelector('[data-progress-text]');
  const send = form.querySelector('[data-send]');
  let request = null;

  file.addEventListener('change', () => {
    const shown = wantsIni(file.files[0]?.name || '');
    iniLabel.hidden = !shown;
    if (!shown) ini.value = '';
  });
  box.querySelector('[data-cancel]').addEventListener('click', () => request?.abort());

  function finish() {
    request = null;
    send.disabled = false;
    box.hidden = true;
    form.removeAttribute('aria-busy');
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    if (request) return;
    clearErrors(form);
    const chosen = file.files[0];
    if (!chosen) { showError(form, 'Choose a .blend, .pov or .zip file first.', file.name); return; }
    const body = new FormData();
    body.append(file.name, chosen);
    if (!iniLabel.hidden && ini.files[0]) body.append(ini.name, ini.files[0]);

    request = new XMLHttpRequest();
    const xhr = request;
    xhr.open('POST', form.action);
    xhr.setRequestHeader(CSRF_HEADER, csrfToken());
    xhr.setRequestHeader('Accept', 'application/json');
    xhr.responseType = 'json';
    xhr.upload.addEventListener('progress', (e) => {
      if (!e.lengthComputable) { text.textContent = `${bytes(e.loaded)} sent`; return; }
      bar.max = e.total;
      bar.value = e.loaded;
      text.textContent = `${bytes(e.loaded)} of ${bytes(e.total)} · ${Math.floor((100 * e.loaded) / e.total)} %`;
    });
    xhr.upload.addEventListener('load', () => {
      bar.removeAttribute('value');
      text.textContent = 'Inspecting…';
    });
    xhr.addEventListener('load', () => {
      const answer = xhr.response;
      if (xhr.status === 201 && answer?.id) {
        location.assign(form.dataset.next + encodeURIComponent(answer.id));
        return;
      }
      finish();
      if (xhr.status === 401) {
        location.assign('/login?next=' + encodeURIComponent(location.pathname));
        return;
      }
      showError(form, answer?.error || `${xhr.status} ${xhr.statusText}`, answer?.field || file.name);
    });
    xhr.addEventListener('error', () => {
      finish();
      showError(form, 'The upload failed: the coordinator did not answer.', file.name);
    });
    xhr.addEventListener('abort', () => {
      finish();
      showError(form, 'Upload cancelled.', file.name);
    });
    send.disabled = true;
    box.hidden = false;
    bar.max = 100;
    bar.value = 0;
    text.textContent = `0 B of ${bytes(chosen.size)} · 0 %`;
    form.setAttribute('aria-busy', 'true');
    xhr.send(body);
  });
}

function startSceneChoice(select) {
  select.addEventListener('change', () => {
    const option = select.selectedOptions[0];
    if (!option) return;
    for (const input of select.form.querySelectorAll('[data-scene-value]')) {
      input.value = option.dataset[input.dataset.sceneValue] ?? input.value;
    }
    for (const fact of document.querySelectorAll('[data-scene-fact]')) {
      fact.textContent = option.dataset[fact.dataset.sceneFact] ?? '';
    }
  });
}

for (const form of document.querySelectorAll('form[data-upload]')) startUpload(form);
for (const select of document.querySelectorAll('select[data-scene-choice]')) startSceneChoice(select);
