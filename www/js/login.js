// Log-in and sign-up. The form works without JavaScript (a plain POST, answered with a
// redirect); with it, errors show inline and the page goes where the server says.

const $ = (id) => document.getElementById(id);
const NAME_RE = /^[\p{L}\p{N}_.-]{1,32}$/u;

const form = $('login-form');
const username = $('username');
const password = $('password');
const submit = $('login-submit');
const toggle = $('mode-toggle');
const errorBox = $('login-error');

let mode = 'login';
let busy = false;

function setMode(next) {
  mode = next;
  const register = mode === 'register';
  form.action = register ? '/register' : '/login';
  $('form-title').textContent = register ? 'Create your account' : 'Log in to WeApRous';
  $('form-subtitle').textContent = register ? 'Pick a name and a password to start chatting.' : 'Channels, direct messages and broadcasts.';
  submit.textContent = register ? 'Sign up' : 'Log in';
  $('switch-text').textContent = register ? 'Already have an account?' : 'New here?';
  toggle.textContent = register ? 'Log in' : 'Create an account';
  password.autocomplete = register ? 'new-password' : 'current-password';
  password.minLength = register ? 8 : 0;
  $('password-hint').hidden = !register;
  document.title = register ? 'Sign up · WeApRous' : 'Log in · WeApRous';
  hideError();
}

function showError(message, field) {
  errorBox.textContent = message;
  errorBox.hidden = false;
  for (const input of [username, password]) input.removeAttribute('aria-invalid');
  if (field) {
    field.setAttribute('aria-invalid', 'true');
    field.focus();
  }
}

function hideError() {
  errorBox.hidden = true;
  errorBox.textContent = '';
  for (const input of [username, password]) input.removeAttribute('aria-invalid');
}

function validate() {
  const name = username.value.trim();
  if (!name) {
    showError('Enter your username.', username);
    return false;
  }
  if (!password.value) {
    showError('Enter your password.', password);
    return false;
  }
  if (mode === 'register') {
    if (!NAME_RE.test(name)) {
      showError('A username is up to 32 letters, digits, “_”, “-” or “.”, without spaces.', username);
      return false;
    }
    const length = Array.from(password.value).length;
    if (length < 8 || length > 128) {
      showError('The password must be 8 to 128 characters long.', password);
      return false;
    }
  }
  return true;
}

function messageFor(status, body) {
  const server = body && typeof body.message === 'string' ? body.message : '';
  if (mode === 'login') {
    if (status === 401) return 'Wrong username or password.';
    if (status === 503) return server || 'No chat server is available right now. Try again in a moment.';
  } else {
    if (status === 409) return server || 'That username is taken. Pick another one.';
    if (status === 403) return server || 'Sign-up is turned off on this server.';
    if (status === 404 || status === 405) return 'Sign-up is not available here: log in, or sign up on your chat server’s page.';
  }
  if (status === 429) return server || 'Too many attempts. Wait a moment and try again.';
  if (server) return server;
  return status >= 500 ? `The server had a problem (${status}). Try again.` : `The request was refused (${status}).`;
}

async function onSubmit(event) {
  event.preventDefault();
  if (busy || !validate()) return;
  busy = true;
  submit.disabled = true;
  submit.setAttribute('aria-busy', 'true');
  const label = submit.textContent;
  submit.textContent = mode === 'register' ? 'Signing up…' : 'Logging in…';
  hideError();
  try {
    const response = await fetch(mode === 'register' ? '/register' : '/login', {
      method: 'POST',
      headers: { Accept: 'application/json', 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ username: username.value.trim(), password: password.value }),
      credentials: 'same-origin',
    });
    if (response.redirected) {
      // A server that ignored Accept and redirected: fetch followed it already.
      window.location.replace(response.url);
      return;
    }
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    if (response.ok) {
      window.location.replace((body && body.location) || '/');
      return;
    }
    const field = response.status === 401 ? password : mode === 'register' && (response.status === 409 || response.status === 400) ? username : null;
    showError(messageFor(response.status, body), field);
    if (response.status === 401) password.select();
  } catch {
    showError('Cannot reach the server. Check your connection and try again.');
  } finally {
    busy = false;
    submit.disabled = false;
    submit.removeAttribute('aria-busy');
    submit.textContent = label;
  }
}

form.addEventListener('submit', onSubmit);
toggle.addEventListener('click', (event) => {
  // Without JavaScript this button posts the form to /register; with it, it switches modes.
  event.preventDefault();
  setMode(mode === 'login' ? 'register' : 'login');
  username.focus();
});
for (const input of [username, password]) input.addEventListener('input', () => input.removeAttribute('aria-invalid'));

// Demo accounts: only when the server says it has some (development); one tap fills
// the form. A deployment has none, and says whether sign-up is on.
function showOptions(options) {
  if (options.sign_up === false) $('switch-text').parentElement.hidden = true;
  const accounts = Array.isArray(options.demo_accounts) ? options.demo_accounts : [];
  const list = $('demo-users');
  list.replaceChildren();
  for (const account of accounts) {
    const item = document.createElement('li');
    const button = document.createElement('button');
    button.type = 'button';
    button.textContent = account.username;
    button.title = `${account.username} / ${account.password}`;
    button.setAttribute('aria-label', `Fill in the demo account ${account.username}`);
    button.addEventListener('click', () => {
      if (mode !== 'login') setMode('login');
      username.value = account.username;
      password.value = account.password;
      submit.focus();
    });
    item.append(button);
    list.append(item);
  }
  $('demo').hidden = accounts.length === 0;
  // Tests wait for this: the server has answered.
  $('demo').dataset.options = 'loaded';
}
fetch('/login-options', { headers: { Accept: 'application/json' }, credentials: 'same-origin' })
  .then((response) => (response.ok ? response.json() : null))
  .then((options) => {
    if (options) showOptions(options);
  })
  .catch(() => {});

// Already logged in on this peer? Offer the way back to the chat.
fetch('/login-state', { headers: { Accept: 'application/json' }, credentials: 'same-origin' })
  .then((response) => (response.ok ? response.json() : null))
  .then((me) => {
    if (!me || !me.username) return;
    const info = $('login-info');
    info.replaceChildren(`You are logged in as ${me.username}. `);
    const link = document.createElement('a');
    link.href = '/';
    link.textContent = 'Go to the chat';
    info.append(link);
    info.hidden = false;
  })
  .catch(() => {});

if (!username.value) username.focus();
