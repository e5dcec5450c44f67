// Forms that act through the HTTP API, the same one the CLI uses:
//   <form data-api="POST" action="/api/v1/jobs/7/cancel" data-confirm="Cancel job 7?" data-then="refresh">
// The fields become a JSON body (or multipart, for enctype="multipart/form-data"); the session's
// CSRF token goes in the X-CSRF-Token header. Field conversions: data-type="int" (a number),
// "list" (comma- or space-separated words; an empty one is sent as [] with data-keep-empty), "json" (the value is JSON), "bool" (a checkbox);
// empty fields are left out. After success, data-then says what happens: "reload", "refresh"
// (re-fetch the page's live regions), "go:/jobs/{job.id}" (fill {path} from the answer) or
// nothing. <output data-from="password"> shows a value of the answer (a new password, a token).
// An error answer's message is shown next to the field it names (`field` in the answer, matched
// against data-error-for), else in the form's data-error-for="" element. A form that succeeded
// fires a bubbling `api:done` event with the answer.
import { refreshAll } from './live.js';

export const CSRF_HEADER = 'X-CSRF-Token';

export function csrfToken() {
  return document.querySelector('meta[name="csrf-token"]')?.content || '';
}

function fieldValue(el) {
  const type = el.dataset.type;
  if (type === 'bool') return el.checked;
  if (el.type === 'checkbox' || el.type === 'radio') return el.checked ? el.value : undefined;
  const raw = el.value.trim();
  // An emptied list field means "none" when it says so (a PC's tags), else it is left out.
  if (raw === '') return type === 'list' && el.hasAttribute('data-keep-empty') ? [] : undefined;
  switch (type) {
    case 'int': return Number(raw);
    case 'list': return raw.split(/[\s,]+/).filter(Boolean);
    case 'json': return JSON.parse(raw);
    default: return raw;
  }
}

function jsonBody(form) {
  const body = {};
  for (const el of form.elements) {
    if (!el.name || el.disabled) continue;
    const value = fieldValue(el);
    if (value === undefined) continue;
    if (el.dataset.type === 'array') (body[el.name] ||= []).push(value);
    else body[el.name] = value;
  }
  return body;
}

function lookup(answer, path) {
  return path.split('.').reduce((v, k) => (v == null ? v : v[k]), answer);
}

/// Shows `message` next to the field `field` of `form` (or at the form's general error place).
export function showError(form, message, field) {
  const place = (field && form.querySelector(`[data-error-for="${CSS.escape(field)}"]`))
    || form.querySelector('[data-error-for=""]');
  if (field) form.elements[field]?.setAttribute?.('aria-invalid', 'true');
  if (place) place.textContent = message;
  else alert(message);
}

export function clearErrors(form) {
  for (const el of form.querySelectorAll('[data-error-for]')) el.textContent = '';
  for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
}

/// Reads an error answer: its message and the field it concerns.
export async function errorOf(response) {
  try {
    const body = await response.json();
    return { message: body.error || response.statusText, field: body.field || '' };
  } catch (_) {
    return { message: `${response.status} ${response.statusText}`, field: '' };
  }
}

/// What a form does after its request succeeded.
export function after(form, answer) {
  for (const out of form.querySelectorAll('output[data-from]')) {
    const v = lookup(answer, out.dataset.from);
    out.textContent = v == null ? '' : String(v);
    out.hidden = false;
  }
  const then = form.dataset.then || '';
  if (then === 'reload') location.reload();
  else if (then === 'refresh') { form.reset(); refreshAll(); }
  else if (then.startsWith('go:')) {
    location.assign(then.slice(3).replace(/\{([\w.]+)\}/g, (_, p) => encodeURIComponent(lookup(answer, p) ?? '')));
  }
  const done = form.querySelector('[data-done]');
  if (done) done.textContent = done.dataset.done;
  form.dispatchEvent(new CustomEvent('api:done', { bubbles: true, detail: answer }));
}

async function send(form) {
  const method = (form.dataset.api || 'POST').toUpperCase();
  const headers = { [CSRF_HEADER]: csrfToken(), Accept: 'application/json' };
  let body;
  if (form.enctype === 'multipart/form-data') body = new FormData(form);
  else if (method !== 'GET' && method !== 'DELETE') {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(jsonBody(form));
  }
  const buttons = form.querySelectorAll('button');
  for (const b of buttons) b.disabled = true;
  form.setAttribute('aria-busy', 'true');
  clearErrors(form);
  try {
    const response = await fetch(form.action, { method, headers, body, credentials: 'same-origin' });
    if (response.status === 401 && !form.action.endsWith('/session')) {
      location.assign('/login?next=' + encodeURIComponent(location.pathname + location.search));
      return;
    }
    if (!response.ok) {
      const { message, field } = await errorOf(response);
      showError(form, message, field);
      return;
    }
    const text = await response.text();
    after(form, text ? JSON.parse(text) : {});
  } catch (e) {
    showError(form, 'The coordinator did not answer: ' + e.message, '');
  } finally {
    for (const b of buttons) b.disabled = false;
    form.removeAttribute('aria-busy');
  }
}

export function startForms() {
  document.addEventListener('submit', (e) => {
    const form = e.target.closest('form[data-api]');
    if (!form || form.dataset.custom !== undefined) return;
    e.preventDefault();
    if (form.dataset.confirm && !confirm(form.dataset.confirm)) return;
    send(form);
  });
}
