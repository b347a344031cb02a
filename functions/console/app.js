// The dropzone console: sign-in with Cognito's hosted UI (authorization code + PKCE), partners,
// uploads and SFTP facts. Plain ES modules, no build step, no inline script (the CSP forbids it).
// Every API error is shown to the user as the API's own message.
import { UNREADABLE, daysUntil, formatDate, renderEach } from './format.js';
import { callbackProblem, groupsOf } from './signin.js';
import {
  SESSION_SECONDS,
  STAFF_PREFIX,
  contactProblem,
  cidrsProblem,
  daysProblem,
  folderProblem,
  graceProblem,
  keyProblem,
  nameProblem,
  splitCidrs,
  uploadKey,
} from './validate.js';

const SESSION_KEY = 'dropzone.session';
const PKCE_KEY = 'dropzone.pkce';
const PAGES = ['loading', 'signin', 'partners', 'upload', 'sftp', 'notfound'];

let config = null;
let session = null;

const $ = (selector, root = document) => root.querySelector(selector);
// `form.name` is the form's own name attribute, so controls are always looked up by name here.
const control = (form, name) => form.elements.namedItem(name);

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

// -- errors -------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message, field = null, code = null) {
    super(message);
    this.status = status;
    this.field = field;
    this.code = code;
  }
}

function showBanner(message) {
  const banner = $('#banner');
  banner.textContent = message;
  banner.hidden = !message;
}

let toastTimer = null;
function toast(message) {
  const box = $('#toast');
  box.textContent = message;
  box.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { box.hidden = true; }, 5000);
}

// -- base64url, PKCE and tokens -------------------------------------------------------------------

function base64url(bytes) {
  let text = '';
  for (const byte of new Uint8Array(bytes)) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function randomString(size) {
  return base64url(crypto.getRandomValues(new Uint8Array(size)));
}

async function pkceChallenge(verifier) {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier));
  return base64url(digest);
}

function decodeJwt(token) {
  const payload = token.split('.')[1];
  const padded = payload.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (payload.length % 4)) % 4);
  const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
  return JSON.parse(new TextDecoder().decode(bytes));
}

function redirectUri() {
  return `${window.location.origin}${config.callbackPath}`;
}

// The stored sign-in, or null; `reason` says why a stored one was dropped.
function loadSession() {
  let reason = '';
  try {
    const stored = JSON.parse(sessionStorage.getItem(SESSION_KEY) || 'null');
    if (stored && stored.expiresAt > Date.now() + 30_000) return { stored, reason };
    if (stored) reason = 'Your session has expired; sign in again.';
  } catch (error) {
    // A damaged entry is treated as signed out.
  }
  sessionStorage.removeItem(SESSION_KEY);
  return { stored: null, reason };
}

function saveSession(tokens) {
  const claims = decodeJwt(tokens.id_token);
  const expiresAt = Math.min(claims.exp * 1000, Date.now() + (tokens.expires_in || 3600) * 1000);
  const groups = groupsOf(claims);
  session = {
    idToken: tokens.id_token,
    expiresAt,
    user: claims['cognito:username'] || claims.email || claims.sub,
    groups,
    isAdmin: groups.includes('admin'),
    isMember: groups.includes('admin') || groups.includes('member'),
  };
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
}

async function signIn(returnTo = '/partners') {
  const verifier = randomString(48);
  const state = randomString(24);
  sessionStorage.setItem(PKCE_KEY, JSON.stringify({ verifier, state, returnTo }));
  const params = new URLSearchParams({
    response_type: 'code',
    client_id: config.clientId,
    redirect_uri: redirectUri(),
    scope: config.scopes.join(' '),
    state,
    code_challenge: await pkceChallenge(verifier),
    code_challenge_method: 'S256',
  });
  window.location.assign(`${config.authOrigin}/oauth2/authorize?${params}`);
}

function signOut() {
  sessionStorage.removeItem(SESSION_KEY);
  session = null;
  const params = new URLSearchParams({ client_id: config.clientId, logout_uri: `${window.location.origin}/` });
  window.location.assign(`${config.authOrigin}/logout?${params}`);
}

async function finishSignIn() {
  const params = new URLSearchParams(window.location.search);
  let pending = null;
  try {
    pending = JSON.parse(sessionStorage.getItem(PKCE_KEY) || 'null');
  } catch (error) {
    // A damaged entry matches no callback.
  }
  sessionStorage.removeItem(PKCE_KEY);
  // The state first, and a fixed message: the URL's own error text is anyone's to write.
  const problem = callbackProblem(params, pending);
  if (problem) throw new Error(problem);
  const body = new URLSearchParams({
    grant_type: 'authorization_code',
    client_id: config.clientId,
    code: params.get('code'),
    redirect_uri: redirectUri(),
    code_verifier: pending.verifier,
  });
  const response = await fetch(`${config.authOrigin}/oauth2/token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body,
  });
  const tokens = await response.json().catch(() => ({}));
  if (!response.ok || !tokens.id_token) {
    throw new Error(`Sign-in failed: ${tokens.error_description || tokens.error || response.status}`);
  }
  saveSession(tokens);
  return pending.returnTo || '/partners';
}

// -- API ------------------------------------------------------------------------------------------

async function api(method, path, body) {
  if (!session || session.expiresAt <= Date.now()) {
    expireSession();
    throw new ApiError(401, 'Your session has expired; sign in again.');
  }
  let response;
  try {
    response = await fetch(`${config.apiUrl}${path}`, {
      method,
      headers: { Authorization: session.idToken, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    throw new ApiError(0, `The API could not be reached (${error.message}); check your connection and try again.`);
  }
  const payload = await response.json().catch(() => null);
  if (!response.ok) {
    const detail = (payload && payload.error) || {};
    const message = detail.message || (payload && payload.message) || `The API answered ${response.status}.`;
    if (response.status === 401) expireSession();
    throw new ApiError(response.status, message, detail.field || null, detail.code || null);
  }
  return payload;
}

function expireSession() {
  sessionStorage.removeItem(SESSION_KEY);
  session = null;
  showPage('signin');
  $('#signin-reason').textContent = 'Your session has expired; sign in again.';
  updateChrome();
}

// -- routing ---------------------------------------------------------------------------------------

function showPage(name) {
  for (const page of PAGES) $(`#page-${page}`).hidden = page !== name;
  for (const link of document.querySelectorAll('nav a')) {
    if (link.dataset.page === name) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  document.title = `${name === 'signin' ? 'Sign in' : name[0].toUpperCase() + name.slice(1)} · Dropzone console`;
}

function navigate(path) {
  window.history.pushState({}, '', path);
  route();
}

function updateChrome() {
  $('#nav').hidden = !(session && session.isMember);
  $('#who').hidden = !session;
  $('#sign-in').hidden = Boolean(session); // signed in without a group: sign out to switch accounts
  document.body.classList.toggle('is-admin', Boolean(session && session.isAdmin));
  if (session) {
    $('#who-name').textContent = session.user;
    $('#who-role').textContent = session.isAdmin ? 'admin' : session.isMember ? 'member' : 'no access';
  }
}

async function route() {
  showBanner('');
  const path = window.location.pathname.replace(/\/+$/, '') || '/';
  if (!session) {
    showPage('signin');
    $('#sign-in').dataset.returnTo = path === '/' ? '/partners' : path;
    return;
  }
  if (!session.isMember) {
    showPage('signin');
    $('#signin-reason').textContent = 'Your account is in neither the admin nor the member group of this silo; ask an administrator for access.';
    return;
  }
  if (path === '/' || path === '/partners') {
    if (path === '/') window.history.replaceState({}, '', '/partners');
    showPage('partners');
    await loadPartners();
  } else if (path === '/upload') {
    showPage('upload');
  } else if (path === '/sftp') {
    showPage('sftp');
  } else {
    showPage('notfound');
  }
}

// -- partners ----------------------------------------------------------------------------------------

function expiryCell(partner) {
  if (partner.expired) return element('td', {}, formatDate(partner.expires), ' ', element('span', { class: 'badge bad', text: 'expired' }));
  const days = daysUntil(partner.expires);
  const left = days === null ? UNREADABLE : `in ${days} day${days === 1 ? '' : 's'}`;
  return element('td', {}, formatDate(partner.expires), element('div', { class: 'muted', text: left }));
}

// One partner the page could not draw: its name (as text) and a note, instead of an empty list.
function brokenRow(partner) {
  const name = partner && typeof partner.name === 'string' ? partner.name : '(unnamed)';
  return element('tr', { 'data-partner': name, class: 'broken' },
    element('td', {}, element('strong', { text: name })),
    element('td', { colspan: '5', class: 'muted', text: 'This partner could not be shown; refresh, or ask an administrator to check it.' }));
}

function keysCell(partner) {
  const cell = element('td');
  if (!partner.access_keys.length) cell.append(element('span', { class: 'badge warn', text: 'no key' }));
  for (const key of partner.access_keys) {
    const active = key.status === 'Active';
    cell.append(element(
      'span',
      { class: 'key' },
      element('code', { text: key.access_key_id }),
      ' ',
      element('span', { class: `badge ${active ? 'ok' : 'bad'}`, text: key.status }),
      key.retires ? element('span', { class: 'muted', text: ` retires ${formatDate(key.retires)}` }) : null,
    ));
  }
  return cell;
}

function partnerRow(partner) {
  const row = element('tr', { 'data-partner': partner.name });
  row.append(
    element('td', {}, element('strong', { text: partner.name }), element('div', { class: 'muted', text: partner.prefix })),
    element('td', { text: partner.contact || '—' }),
    element('td', {}, formatDate(partner.created), element('div', { class: 'muted', text: partner.creator ? `by ${partner.creator}` : '' })),
    expiryCell(partner),
    keysCell(partner),
  );
  if (session.isAdmin) {
    row.append(element('td', { class: 'admin-only' }, element(
      'div',
      { class: 'row-actions' },
      element('button', { type: 'button', 'data-action': 'rotate', text: 'Rotate key', onclick: () => rotatePartner(partner) }),
      element('button', { type: 'button', 'data-action': 'session', text: 'Temporary session', onclick: () => sessionFor(partner) }),
      element('button', { type: 'button', 'data-action': 'revoke', class: 'danger', text: 'Revoke', onclick: () => revokePartner(partner) }),
    )));
  }
  return row;
}

async function loadPartners() {
  const form = $('#create-form');
  form.hidden = !session.isAdmin;
  $('#partners-note').hidden = session.isAdmin;
  // A refusal of the last create may no longer hold (e.g. the partner was revoked since).
  setFieldErrors(form, {});
  $('#create-error').textContent = '';
  const table = $('#partners-table');
  const body = $('#partners-table tbody');
  const error = $('#partners-error');
  error.textContent = '';
  // Never show a stale list: rows disappear until the API has answered.
  body.replaceChildren();
  $('#partners-empty').hidden = true;
  table.setAttribute('aria-busy', 'true');
  try {
    const { partners } = await api('GET', '/partners');
    body.replaceChildren(...renderEach(partners, partnerRow, brokenRow));
    $('#partners-empty').hidden = partners.length > 0;
  } catch (failure) {
    error.textContent = failure.message;
  } finally {
    table.removeAttribute('aria-busy');
  }
}

function setFieldErrors(form, errors) {
  for (const slot of form.querySelectorAll('[data-error-for]')) {
    const message = errors[slot.dataset.errorFor] || '';
    slot.textContent = message;
    const input = form.querySelector(`[name="${slot.dataset.errorFor}"]`);
    if (input) input.setAttribute('aria-invalid', message ? 'true' : 'false');
  }
}

async function createPartner(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const values = {
    name: control(form, 'name').value.trim(),
    contact: control(form, 'contact').value.trim(),
    expires_in_days: control(form, 'expires_in_days').value.trim(),
    allowed_cidrs: splitCidrs(control(form, 'allowed_cidrs').value),
  };
  const errors = {};
  const problems = {
    name: nameProblem(values.name),
    contact: contactProblem(values.contact),
    expires_in_days: daysProblem(values.expires_in_days),
    allowed_cidrs: cidrsProblem(values.allowed_cidrs),
  };
  for (const [field, problem] of Object.entries(problems)) if (problem) errors[field] = problem;
  setFieldErrors(form, errors);
  $('#create-error').textContent = '';
  if (Object.keys(errors).length) return;

  const body = { name: values.name, contact: values.contact, expires_in_days: Number(values.expires_in_days) };
  if (values.allowed_cidrs.length) body.allowed_cidrs = values.allowed_cidrs;
  const submit = $('#create-submit');
  submit.disabled = true;
  try {
    const created = await api('POST', '/partners', body);
    form.reset();
    showSecret(`Partner ${created.partner.name} created`, created.credentials, [
      `Uploads go to ${created.partner.prefix}. Expires ${formatDate(created.partner.expires)}.`,
    ]);
    await loadPartners();
  } catch (failure) {
    if (failure.field && form.querySelector(`[data-error-for="${failure.field}"]`)) {
      setFieldErrors(form, { [failure.field]: failure.message });
    }
    $('#create-error').textContent = failure.message;
  } finally {
    submit.disabled = false;
  }
}

// -- secrets, shown once ------------------------------------------------------------------------------

async function copyText(text, button) {
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = 'Copied';
  } catch (error) {
    button.textContent = 'Copy failed: select and copy by hand';
  }
}

function showSecret(title, credentials, notes = []) {
  const dialog = $('#secret-dialog');
  $('#secret-title').textContent = title;
  const fields = [
    ['Access key id', credentials.access_key_id, 'access-key-id'],
    ['Secret access key', credentials.secret_access_key, 'secret-access-key'],
  ];
  if (credentials.session_token) fields.push(['Session token', credentials.session_token, 'session-token']);
  if (credentials.expiration) fields.push(['Expires', formatDate(credentials.expiration), 'expiration']);
  const list = $('#secret-fields');
  list.replaceChildren();
  for (const [label, value, id] of fields) {
    const copy = element('button', { type: 'button', 'data-copy': id, text: 'Copy' });
    copy.addEventListener('click', () => copyText(value, copy));
    list.append(element('dt', { text: label }), element('dd', {}, element('code', { id: `secret-${id}`, text: value }), copy));
  }
  $('#secret-extra').textContent = notes.join(' ');
  dialog.showModal();
}

function closeSecret() {
  // The secret leaves the page for good: nothing keeps it after the dialog closes.
  $('#secret-fields').replaceChildren();
  $('#secret-extra').textContent = '';
  $('#secret-dialog').close();
}

// -- confirmations ----------------------------------------------------------------------------------

function confirmAction({ title, text, ok, extra = null, action }) {
  const dialog = $('#confirm-dialog');
  const form = $('#confirm-form');
  $('#confirm-title').textContent = title;
  $('#confirm-text').textContent = text;
  $('#confirm-extra').replaceChildren(...(extra ? [extra] : []));
  $('#confirm-error').textContent = '';
  const okButton = $('#confirm-ok');
  okButton.textContent = ok;
  okButton.disabled = false;
  form.onsubmit = async (event) => {
    event.preventDefault();
    okButton.disabled = true;
    try {
      await action();
      dialog.close();
    } catch (failure) {
      $('#confirm-error').textContent = failure.message;
    } finally {
      okButton.disabled = false;
    }
  };
  dialog.showModal();
}

function rotatePartner(partner) {
  const grace = element('input', { id: 'rotate-grace', name: 'grace_period_hours', type: 'number', min: '0', max: '168', value: '0' });
  confirmAction({
    title: `Rotate the key of ${partner.name}?`,
    text: 'A new access key is created and shown once. With a grace period the old key keeps working that many hours; with 0 it is deleted now.',
    ok: 'Rotate key',
    extra: element('label', { for: 'rotate-grace', text: 'Grace period (hours) ' }, grace),
    action: async () => {
      const problem = graceProblem(grace.value);
      if (problem) throw new Error(`grace_period_hours: ${problem}`);
      const rotated = await api('POST', `/partners/${encodeURIComponent(partner.name)}/rotate`, { grace_period_hours: Number(grace.value) });
      const retiring = rotated.retiring.map((k) => `${k.access_key_id} keeps working until ${formatDate(k.retires)}.`);
      showSecret(`New key for ${partner.name}`, rotated.credentials, retiring);
      await loadPartners();
    },
  });
}

function sessionFor(partner) {
  const duration = element('select', { id: 'session-duration', name: 'duration_seconds' },
    ...SESSION_SECONDS.map((seconds) => element('option', { value: String(seconds), text: `${seconds / 60} minutes` })));
  duration.value = String(SESSION_SECONDS[SESSION_SECONDS.length - 1]);
  confirmAction({
    title: `Temporary credentials for ${partner.name}`,
    text: 'Short-lived credentials limited to the partner\'s folder, for a one-off delivery. They cannot be revoked before they expire; revoking the partner stops new ones.',
    ok: 'Issue credentials',
    extra: element('label', { for: 'session-duration', text: 'Valid for ' }, duration),
    action: async () => {
      const issued = await api('POST', `/partners/${encodeURIComponent(partner.name)}/session`, { duration_seconds: Number(duration.value) });
      showSecret(`Temporary credentials for ${partner.name}`, issued.credentials, [
        `Upload with: aws s3 cp <file> s3://${issued.bucket}/${issued.prefix} --region ${issued.region}`,
      ]);
    },
  });
}

function revokePartner(partner) {
  confirmAction({
    title: `Revoke ${partner.name}?`,
    text: `Its access keys, SSH keys and user are deleted at once: the partner can no longer upload, by S3 or SFTP. Files it already delivered stay in ${partner.prefix}.`,
    ok: 'Revoke partner',
    action: async () => {
      await api('DELETE', `/partners/${encodeURIComponent(partner.name)}`);
      toast(`Partner ${partner.name} revoked.`);
      await loadPartners();
    },
  });
}

// -- uploads -----------------------------------------------------------------------------------------

function s3Message(xhr) {
  const match = /<Message>([^<]*)<\/Message>/.exec(xhr.responseText || '');
  return match ? match[1] : `S3 answered ${xhr.status}`;
}

function postToS3(target, file, onProgress) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    for (const [name, value] of Object.entries(target.fields)) form.append(name, value);
    form.append('file', file); // S3 ignores every field after the file
    const xhr = new XMLHttpRequest();
    xhr.open('POST', target.url);
    xhr.upload.addEventListener('progress', (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    xhr.addEventListener('load', () => {
      if (xhr.status >= 200 && xhr.status < 300) resolve();
      else reject(new Error(`S3 refused the upload: ${s3Message(xhr)}`));
    });
    xhr.addEventListener('error', () => reject(new Error('The upload was interrupted (network error or the bucket refused this site).')));
    xhr.send(form);
  });
}

function uploadRow(file) {
  const progress = element('progress', { max: '1', value: '0' });
  const status = element('div', { class: 'status', text: 'Waiting…' });
  const item = element('li', { 'data-file': file.name }, element('div', { class: 'name', text: file.name }), progress, status);
  return { item, progress, status };
}

async function uploadOne(file, folder, row) {
  const key = uploadKey(folder, file.name);
  const problem = keyProblem(key) || (file.size === 0 ? 'the file is empty; S3 accepts uploads of at least 1 byte' : null);
  if (problem) throw new Error(problem);
  row.status.textContent = 'Preparing…';
  const target = await api('POST', '/uploads', { key });
  if (file.size > target.max_bytes) {
    throw new Error(`the file has ${file.size} bytes; the dropzone accepts at most ${target.max_bytes} per upload`);
  }
  row.status.textContent = 'Uploading…';
  await postToS3(target, file, (share) => {
    row.progress.value = share;
    row.status.textContent = `Uploading… ${Math.round(share * 100)}%`;
  });
  row.progress.value = 1;
  return `s3://${target.bucket}/${target.key}`;
}

async function uploadFiles(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const files = Array.from(control(form, 'files').files);
  const errors = {};
  const folderIssue = folderProblem(control(form, 'folder').value);
  if (folderIssue) errors.folder = folderIssue;
  if (!files.length) errors.files = 'choose one or more files';
  setFieldErrors(form, errors);
  if (Object.keys(errors).length) return;

  const list = $('#upload-list');
  const rows = files.map(uploadRow);
  list.prepend(...rows.map((row) => row.item)); // newest batch first, files in the order chosen
  $('#upload-submit').disabled = true;
  // Three at a time: enough to fill a link, few enough for the browser's connection limit.
  const queue = files.map((file, index) => [file, rows[index]]);
  const worker = async () => {
    while (queue.length) {
      const [file, row] = queue.shift();
      try {
        const location = await uploadOne(file, control(form, 'folder').value, row);
        row.item.classList.add('done');
        row.status.textContent = `Uploaded to ${location}`;
      } catch (failure) {
        row.item.classList.add('failed');
        row.status.textContent = `Failed: ${failure.message}`;
      }
    }
  };
  await Promise.all([worker(), worker(), worker()]);
  $('#upload-submit').disabled = false;
  control(form, 'files').value = '';
}

// -- start -----------------------------------------------------------------------------------------

function fillStaticFacts() {
  $('#silo-name').textContent = config.siloName ? `· ${config.siloName}` : '';
  $('#upload-destination').textContent = `s3://${config.dropzoneBucket}/${STAFF_PREFIX}`;
  const sftp = config.sftp || {};
  $('#sftp-on').hidden = !sftp.enabled;
  $('#sftp-off').hidden = Boolean(sftp.enabled);
  if (sftp.enabled) {
    $('#sftp-host').textContent = sftp.host;
    $('#sftp-example').textContent = `sftp acme-logistics@${sftp.host}\nsftp> put orders-2026-11.csv`;
  }
}

function wireEvents() {
  document.addEventListener('click', (event) => {
    const link = event.target.closest('a[data-route]');
    if (link && !event.ctrlKey && !event.metaKey && !event.shiftKey) {
      event.preventDefault();
      navigate(link.getAttribute('href'));
    }
  });
  window.addEventListener('popstate', route);
  $('#sign-in').addEventListener('click', (event) => signIn(event.currentTarget.dataset.returnTo));
  $('#sign-out').addEventListener('click', signOut);
  $('#partners-refresh').addEventListener('click', loadPartners);
  $('#create-form').addEventListener('submit', createPartner);
  $('#upload-form').addEventListener('submit', uploadFiles);
  $('#secret-done').addEventListener('click', closeSecret);
  $('#secret-dialog').addEventListener('cancel', (event) => event.preventDefault()); // Esc must not lose the secret unseen
  $('#confirm-cancel').addEventListener('click', () => $('#confirm-dialog').close());
}

async function start() {
  wireEvents();
  try {
    const response = await fetch('/config.json', { cache: 'no-store' });
    if (!response.ok) throw new Error(`config.json answered ${response.status}`);
    config = await response.json();
  } catch (error) {
    showPage('notfound');
    showBanner(`The console is not configured (${error.message}).`);
    return;
  }
  fillStaticFacts();
  const restored = loadSession();
  session = restored.stored;
  $('#signin-reason').textContent = restored.reason;
  if (window.location.pathname === config.callbackPath) {
    try {
      const returnTo = await finishSignIn();
      window.history.replaceState({}, '', returnTo);
    } catch (error) {
      window.history.replaceState({}, '', '/');
      updateChrome();
      showPage('signin');
      showBanner(error.message);
      return;
    }
  }
  updateChrome();
  await route();
}

start();
