// The chat page: wires the store, the live connection, the outbox and the views
// together, and keeps the open conversation in the address (`#c/general`, `#u/alice`),
// so Back, Forward and an edited address move between conversations.

import { api, ApiError } from './api.js';
import { el, avatar } from './ui.js';
import { state, changed, flush, thread, keyOf, isCurrentKey, notify, unreadCount, getSeen } from './store.js';
import { startLive } from './live.js';
import { startOutbox, enqueue, kick } from './outbox.js';
import * as data from './data.js';
import { setupSidebar, closeSidebar, isNarrow } from './views/sidebar.js';
import { setupThread, threadOpened, renderHeader, markCurrentSeen } from './views/thread.js';
import { setupComposer, composerOpened, composerClosed, restoreDraft, startReply, startEdit } from './views/composer.js';
import { hooks as messageHooks, onChange, saveEdit } from './views/actions.js';
import { setupTyping, typed, onTyping } from './views/typing.js';
import { setupSearch, searchHooks } from './views/search.js';
import { setupAlerts } from './views/alerts.js';

const NAME_RE = /^[\p{L}\p{N}_.-]{1,32}$/u;
const REFRESH_MS = 30_000; // lists (people, contacts, channels) while the stream is up
const $ = (id) => document.getElementById(id);

// === Errors ===

function toast(text, kind = 'error') {
  const node = el('div', { class: `toast toast-${kind}` }, text);
  $('toasts').append(node);
  setTimeout(() => node.classList.add('leaving'), 4500);
  setTimeout(() => node.remove(), 5000);
}

function showError(err, context) {
  if (err && err.name === 'AbortError') return;
  if (err instanceof ApiError && err.status === 401) return; // on the way to /login
  // Unreachable while the connection is down: the status in the corner says so, and
  // what was sent waits in the outbox.
  if (err instanceof ApiError && err.status === 0 && state.conn !== 'live') return;
  const message = err instanceof ApiError ? err.message : String((err && err.message) || err);
  const text = context ? `${context}: ${message}` : message;
  notify(text, 'error');
  toast(text);
}
data.errors.report = showError;

// === The open conversation, from the address ===

const hashOf = (kind, name) => `#${kind === 'channel' ? 'c' : 'u'}/${encodeURIComponent(name)}`;

function parseHash(hash) {
  let raw;
  try {
    raw = decodeURIComponent(hash.slice(1));
  } catch {
    return null;
  }
  const m = /^([cu])\/(.+)$/u.exec(raw);
  if (!m || !NAME_RE.test(m[2])) return null;
  return { kind: m[1] === 'c' ? 'channel' : 'dm', name: m[2] };
}

/** Go to a conversation: a new history entry, so Back returns to the one before. */
function go(kind, name) {
  const hash = hashOf(kind, name);
  if (location.hash === hash) show(kind, name);
  else location.hash = hash; // -> hashchange -> route()
}

/** Show what the address names (or the welcome when it names nothing we can open). */
function route() {
  const target = parseHash(location.hash);
  if (target && (target.kind === 'dm' || state.joined.has(target.name)) && target.name !== state.me) show(target.kind, target.name);
  else closeThread({ keepAddress: !!target });
}

function show(kind, name) {
  closeSidebar({ restoreFocus: false });
  if (isCurrentKey(keyOf(kind, name))) return;
  const t = thread(kind, name);
  // Where "new since you left" goes: after the last message read, if any arrived since.
  t.newSince = unreadCount(t) > 0 ? (t.lastRead ?? getSeen(t.key) ?? null) : null;
  state.current = { kind, name };
  if (kind === 'dm') state.partners.add(name);
  $('welcome').hidden = true;
  $('thread').hidden = false;
  threadOpened();
  composerOpened(kind, name);
  changed('header', 'thread', 'channels', 'dms');
  flush();
  try {
    localStorage.setItem(`weaprous:${state.me}:last`, `${kind}:${name}`);
  } catch {
    /* ignore */
  }
  if (!isNarrow()) $('composer-input').focus();
  if (!t.loaded && !t.loading) {
    t.loading = true; // shows "Loading…" at once
    changed('thread');
    t.loading = false;
    data.loadLatest(t).catch((err) => showError(err, kind === 'channel' ? `#${name}` : `Conversation with ${name}`));
  } else {
    markCurrentSeen();
  }
}

function closeThread({ keepAddress = false } = {}) {
  if (state.current) composerClosed();
  state.current = null;
  $('thread').hidden = true;
  $('welcome').hidden = false;
  changed('header', 'channels', 'dms');
  if (!keepAddress && location.hash) history.replaceState(null, '', location.pathname);
}

// === Actions ===

async function withBusy(button, job) {
  if (button) button.disabled = true;
  try {
    return await job();
  } finally {
    if (button && button.isConnected) button.disabled = false;
  }
}

async function joinChannel(name, button) {
  try {
    await withBusy(button, () => api.joinChannel(name));
    data.noteMembershipChange(name, true);
    state.joined.add(name);
    changed('channels');
    notify(`Joined #${name}`);
    go('channel', name);
  } catch (err) {
    showError(err, `Joining #${name}`);
  }
  data.refreshChannels().catch(() => {});
}

async function leaveCurrentChannel() {
  const cur = state.current;
  if (!cur || cur.kind !== 'channel') return;
  if (!window.confirm(`Leave #${cur.name}? You can join it again later.`)) return;
  try {
    await withBusy($('leave-channel'), () => api.leaveChannel(cur.name));
    data.noteMembershipChange(cur.name, false);
    state.joined.delete(cur.name);
    state.threads.delete(keyOf('channel', cur.name));
    closeThread();
    changed('channels');
    notify(`Left #${cur.name}`);
    data.refreshChannels().catch(() => {});
  } catch (err) {
    showError(err, `Leaving #${cur.name}`);
  }
}

async function setTopic() {
  const cur = state.current;
  if (!cur || cur.kind !== 'channel') return;
  const t = thread('channel', cur.name);
  const topic = window.prompt(`The topic of #${cur.name} (up to 250 characters; empty clears it)`, t.topic || '');
  if (topic === null) return;
  try {
    await withBusy($('set-topic'), () => api.setTopic(cur.name, topic.trim()));
    t.topic = topic.trim();
    changed('header');
  } catch (err) {
    showError(err, 'Setting the topic');
  }
}

async function invite() {
  const cur = state.current;
  if (!cur || cur.kind !== 'channel') return;
  const who = window.prompt(`Who should join #${cur.name}? (a user name)`, '');
  if (!who || !who.trim()) return;
  try {
    await withBusy($('invite'), () => api.invite(cur.name, who.trim()));
    notify(`${who.trim()} is now in #${cur.name}`);
  } catch (err) {
    showError(err, 'Inviting');
  }
}

async function createChannel(event) {
  event.preventDefault();
  const input = $('new-channel-name');
  const error = $('create-channel-error');
  const name = input.value.trim().replace(/^#+/, '').toLowerCase();
  const fail = (message) => {
    error.textContent = message;
    error.hidden = false;
    input.setAttribute('aria-invalid', 'true');
    input.focus();
  };
  if (!name) return fail('Type a name for the channel.');
  if (!NAME_RE.test(name)) return fail('Use up to 32 letters, digits, “_”, “-” or “.”.');
  error.hidden = true;
  input.removeAttribute('aria-invalid');
  try {
    const isPrivate = $('new-channel-private').checked;
    await withBusy(event.submitter || null, () => api.createChannel(name, isPrivate));
    thread('channel', name).private = isPrivate;
    $('new-channel-private').checked = false;
    input.value = '';
    toggleCreateForm(false);
    data.noteMembershipChange(name, true);
    state.joined.add(name);
    if (!state.allChannels.includes(name)) state.allChannels = [...state.allChannels, name].sort();
    changed('channels');
    notify(`Created #${name}`);
    go('channel', name);
    data.refreshChannels().catch(() => {});
  } catch (err) {
    if (err instanceof ApiError && err.status === 409) fail(`#${name} already exists: join it under “Browse channels”.`);
    else if (err instanceof ApiError && err.status >= 400 && err.status < 500) fail(err.message);
    else showError(err, 'Creating the channel');
  }
}

function toggleCreateForm(open) {
  const form = $('create-channel-form');
  const show = open ?? form.hidden;
  form.hidden = !show;
  $('new-channel-toggle').setAttribute('aria-expanded', String(show));
  if (show) $('new-channel-name').focus();
  else $('create-channel-error').hidden = true;
}

/** Writing to someone makes them a contact (they get your broadcasts): one action,
 * "Message", instead of "Connect" and "Message". Needs their peer to answer; when it
 * does not, the next message tries again. */
const connecting = new Set();
function makeContact(name) {
  if (state.contacts.has(name) || connecting.has(name)) return;
  connecting.add(name);
  api
    .connect(name)
    .then(() => data.refreshContacts())
    .catch(() => {})
    .finally(() => connecting.delete(name));
}

function messageUser(name) {
  state.partners.add(name);
  changed('dms');
  makeContact(name);
  go('dm', name);
}

function send(kind, name, text, replyTo) {
  if (kind === 'dm') makeContact(name);
  enqueue(kind, name, text, replyTo);
}

async function broadcast(text) {
  const result = await api.broadcast(text);
  const queued = Number(result.queued) || 0;
  notify(`Broadcast sent: ${Number(result.delivered) || 0} delivered${queued ? `, ${queued} stored for later` : ''}.`);
}

async function logout() {
  try {
    await withBusy($('logout'), () => api.logout());
  } catch {
    /* the session may already be gone; leave anyway */
  }
  window.location.replace('/login');
}

// === Events ===

function onEvent(ev) {
  switch (ev.type) {
    case 'channel_message':
      data.ingestChannel(ev);
      break;
    case 'direct_message':
      data.ingestDirect([ev], { live: true });
      break;
    case 'membership':
      data.onMembership(ev, { closeThread });
      break;
    case 'presence':
      data.onPresence(ev);
      break;
    case 'reset':
      data.resync();
      break;
    case 'typing':
      onTyping(ev);
      break;
    case 'read':
      data.onRead(ev);
      break;
    case 'mention':
      data.onMention(ev);
      break;
    case 'channel_updated':
      data.onChannelUpdated(ev);
      break;
    case 'message_edited':
    case 'message_deleted':
    case 'reaction':
      onChange(ev);
      break;
    default:
      break;
  }
}

function onOpen(afterGap) {
  kick();
  if (afterGap) data.resync().catch((err) => showError(err, 'Catching up'));
}

// === Start ===

function wireUp() {
  setupSidebar({ join: joinChannel, message: messageUser });
  setupThread({ loadOlder: data.loadOlder });
  setupComposer({ send, saveEdit, typed, error: showError, broadcast, toast, narrow: isNarrow });
  setupTyping();
  setupSearch();
  setupAlerts();
  searchHooks.open = go;
  Object.assign(messageHooks, { reply: startReply, edit: startEdit, error: showError, loadOlder: data.loadOlder });
  $('new-channel-toggle').addEventListener('click', () => toggleCreateForm());
  $('create-channel-form').addEventListener('submit', createChannel);
  $('new-channel-name').addEventListener('keydown', (e) => {
    if (e.key === 'Escape') {
      e.stopPropagation();
      toggleCreateForm(false);
      $('new-channel-toggle').focus();
    }
  });
  $('leave-channel').addEventListener('click', leaveCurrentChannel);
  $('set-topic').addEventListener('click', setTopic);
  $('invite').addEventListener('click', invite);
  $('logout').addEventListener('click', logout);
  window.addEventListener('hashchange', route);
}

/** The conversation to show first: the address's, else (desktop) the last one open. */
function restore() {
  if (parseHash(location.hash)) return route();
  try {
    const last = localStorage.getItem(`weaprous:${state.me}:last`);
    const m = last && /^(channel|dm):(.+)$/u.exec(last);
    if (m && !isNarrow() && NAME_RE.test(m[2]) && (m[1] === 'dm' || state.joined.has(m[2]))) {
      history.replaceState(null, '', hashOf(m[1], m[2]));
      route();
    }
  } catch {
    /* ignore */
  }
}

async function main() {
  wireUp();
  let me;
  try {
    me = await api.me();
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return; // going to /login
    $('app').dataset.state = 'error';
    showError(err, 'Cannot load your session');
    setTimeout(() => window.location.reload(), 5000);
    return;
  }
  state.me = me.username;
  $('me-name').textContent = state.me;
  $('welcome-name').textContent = state.me;
  const real = avatar(state.me);
  real.id = 'me-avatar';
  $('me-avatar').replaceWith(real);
  renderHeader();

  // The stream first, so nothing that happens while we load is missed.
  startLive({ onEvent, onOpen, poll: data.pollOnce });
  setInterval(() => {
    if (!document.hidden) data.refreshAll();
  }, REFRESH_MS);
  const results = await Promise.allSettled([data.refreshContacts(), data.refreshUsers(), data.refreshChannels(), data.loadDirect()]);
  for (const r of results) if (r.status === 'rejected') showError(r.reason, 'Loading');
  startOutbox((kind, name, text, err) => {
    restoreDraft(kind, name, text);
    showError(err, `Message not sent (it is back in the box of ${kind === 'channel' ? `#${name}` : name})`);
  });
  flush();
  $('app').dataset.state = 'ready';
  restore();
}

main();
