// Fields that repeat another, such as a new password typed twice:
//   <input id="again" type="password" data-same-as="password">
// Before an API form is sent (forms.js), each such field must equal the form's field of that
// name; otherwise the form is not sent and the mismatch is shown in [data-error-for=ID].
// Listens in the capture phase, so it runs before forms.js sends anything.
import { clearErrors, showError } from './forms.js';

function mismatch(form) {
  for (const el of form.querySelectorAll('input[data-same-as]')) {
    const other = form.elements[el.dataset.sameAs];
    if (other && other.value !== el.value) return el;
  }
  return null;
}

document.addEventListener('submit', (e) => {
  const form = e.target.closest('form[data-api]');
  if (!form) return;
  const el = mismatch(form);
  if (!el) return;
  e.preventDefault();
  e.stopImmediatePropagation();
  clearErrors(form);
  showError(form, 'The two passwords differ: type the same password twice.', el.id);
  el.setAttribute('aria-invalid', 'true');
  el.focus();
}, true);
