// The chat page: sidebar (channels, direct messages, who is online, notifications),
// one open thread (a channel or a conversation), real-time updates from /events with a
// polling fallback. User text is only ever set with textContent.

import { api, ApiError } from './api.js';
import { el, replaceChildren, formatTime, formatFull, formatDay, dayKey, avatar, icon, charCount } from './ui.js';

const MAX_MESSAGE_CHARS = 4000;
const PAGE_SIZE = 50;
const POLL_MS = 3000;
const REFRESH_MS = 30_000; // lists (online users, contacts, channels) while the stream is up
const REFRESH_POLLING_MS = 10_000;
const SSE_RETRY_MS = 30_000; // how long to poll before trying the stream again
const SSE_MAX_FAILURES = 3;
const GROUP_MS = 5 * 60_000; // consecutive messages of one sender within this are grouped
const NAME_RE = /^[\p{L}\p{N}_.-]{1,32}$/u;
const NARROW = window.matchMedia('(max-width: 760px)');

const $ = (id) => document.getElementById(id);

/** @typedef {{id: string|number, author: string, text: string, ts: number, broadcast?: boolean, to?: string, seq?: number, local?: boolean}} Msg */

const state = {
  me: '',
  peer: '',
  /** online users other than me: name -> {ip, port, username} */
  users: new Map(),
  /** my contacts: name -> {ip, port, username, online} */
  contacts: new Map(),
  /** people I have a conversation with in this page (contacts plus whoever wrote) */
  partners: new Set(),
  allChannels: [],
  joined: new Set(),
  /** threads: "c:name" or "u:name" -> Thread */
  threads: new Map(),
  /** the open thread: {kind: 'channel'|'dm', name} */
  current: null,
  /** DM id -> 'sending' | 'delivered' | 'queued' */
  delivery: new Map(),
  notes: [],
};

const keyOf = (kind, name) => `${kind === 'channel' ? 'c' : 'u'}:${name}`;

function thread(kind, name) {
  const key = keyOf(kind, name);
  let t = state.threads.get(key);
  if (!t) {
    t = { kind, name, key, byId: new Map(), list: [], loaded: false, loading: false, hasMore: false, members: [], error: null };
    state.threads.set(key, t);
  }
  return t;
}

const currentThread = () => (state.current ? thread(state.current.kind, state.current.name) : null);

// === Message normalisation and storage ===

function fromChannel(m) {
  return { id: Number(m.id), author: m.username, text: m.text, ts: Number(m.ts) || 0, channel: m.channel };
}

function fromDirect(m) {
  const msg = {
    id: String(m.id),
    author: m.username,
    to: m.to,
    text: m.message,
    ts: Number(m.ts) || 0,
    broadcast: !!m.broadcast,
  };
  if (m.seq !== undefined && m.seq !== null) msg.seq = Number(m.seq);
  if (typeof m.delivered === 'boolean' && m.username === state.me) {
    const known = state.delivery.get(msg.id);
    if (known !== 'delivered') state.delivery.set(msg.id, m.delivered ? 'delivered' : 'queued');
  }
  return msg;
}

const partnerOf = (m) => (m.author === state.me ? m.to : m.author);

function compare(kind) {
  if (kind === 'channel') return (a, b) => a.id - b.id;
  return (a, b) => {
    if (a.seq !== undefined && b.seq !== undefined && a.seq !== b.seq) return a.seq - b.seq;
    if (a.ts !== b.ts) return a.ts - b.ts;
    return String(a.id) < String(b.id) ? -1 : String(a.id) > String(b.id) ? 1 : 0;
  };
}

/** Add messages to a thread, skipping ids it already has. Returns the new ones. */
function addMessages(t, msgs) {
  const added = [];
  for (const m of msgs) {
    const existing = t.byId.get(m.id);
    if (existing) {
      // A local echo of our own send: take the server's time and sequence.
      if (existing.local && !m.local) Object.assign(existing, m, { local: false });
      continue;
    }
    t.byId.set(m.id, m);
    added.push(m);
  }
  if (added.length) {
    const cmp = compare(t.kind);
    const last = t.list[t.list.length - 1];
    const inOrder = added.every((m, i) => (i === 0 ? !last || cmp(last, m) <= 0 : cmp(added[i - 1], m) <= 0));
    t.list.push(...added);
    if (!inOrder) t.list.sort(cmp);
  }
  return added;
}

// === "Seen" markers (unread counts survive a reload) ===

const seenKey = (key) => `weaprous:${state.me}:seen:${key}`;

function getSeen(key) {
  try {
    const raw = localStorage.getItem(seenKey(key));
    return raw === null ? null : Number(raw);
  } catch {
    return null;
  }
}

function setSeen(key, value) {
  try {
    localStorage.setItem(seenKey(key), String(value));
  } catch {
    /* private mode: counts just won't survive a reload */
  }
}

const markOf = (t, m) => (t.kind === 'channel' ? m.id : m.ts);

function unreadCount(t) {
  const seen = getSeen(t.key) ?? 0;
  let n = 0;
  for (let i = t.list.length - 1; i >= 0; i--) {
    const m = t.list[i];
    if (markOf(t, m) <= seen) break;
    if (m.author !== state.me) n++;
  }
  return n;
}

/** Mark the open thread as read when the reader can actually see its end. */
function markCurrentSeen() {
  const t = currentThread();
  if (!t || !t.list.length || document.hidden || !isAtBottom()) return;
  const last = markOf(t, t.list[t.list.length - 1]);
  if ((getSeen(t.key) ?? -1) < last) {
    setSeen(t.key, last);
    renderSidebarCounts();
  }
}

/** First time we see a channel: its history so far counts as read. */
function initSeen(t) {
  if (getSeen(t.key) === null && t.list.length) setSeen(t.key, markOf(t, t.list[t.list.length - 1]));
}

// === Notifications and toasts ===

function notify(text, kind = 'info') {
  state.notes.unshift({ text, kind, ts: Date.now() });
  if (state.notes.length > 50) state.notes.length = 50;
  renderNotes();
}

function toast(text, kind = 'error') {
  const box = $('toasts');
  const node = el('div', { class: `toast toast-${kind}` }, text);
  box.append(node);
  setTimeout(() => node.classList.add('leaving'), 4500);
  setTimeout(() => node.remove(), 5000);
}

function showError(err, context) {
  if (err && err.name === 'AbortError') return;
  if (err instanceof ApiError && err.status === 401) return; // on the way to /login
  const message = err instanceof ApiError ? err.message : String((err && err.message) || err);
  const text = context ? `${context}: ${message}` : message;
  notify(text, 'error');
  toast(text);
  console.warn(text, err);
}

// === Loading data ===

async function refreshUsers() {
  const list = await api.users();
  state.users = new Map();
  for (const u of Array.isArray(list) ? list : []) {
    if (u && u.username && u.username !== state.me) state.users.set(u.username, u);
  }
  for (const c of state.contacts.values()) c.online = state.users.has(c.username) || c.online;
  renderUsers();
  renderDMs();
  renderHeader();
}

async function refreshContacts() {
  const list = await api.contacts();
  state.contacts = new Map();
  for (const c of Array.isArray(list) ? list : []) {
    if (c && c.username) {
      state.contacts.set(c.username, c);
      state.partners.add(c.username);
    }
  }
  renderUsers();
  renderDMs();
  renderHeader();
}

/** Channels joined or left here in the last few seconds: a list fetched just before
 * that change must not undo it. name -> {joined, at} */
const recentChanges = new Map();
const RECENT_MS = 5000;

function noteMembershipChange(name, joined) {
  recentChanges.set(name, { joined, at: Date.now() });
}

async function refreshChannels() {
  const [all, joined] = await Promise.all([api.allChannels(), api.joinedChannels()]);
  state.allChannels = [...new Set([...(all.channels || []), ...(joined.channels || [])])].sort();
  const before = state.joined;
  const next = new Set(joined.channels || []);
  for (const [name, change] of recentChanges) {
    if (Date.now() - change.at > RECENT_MS) recentChanges.delete(name);
    else if (change.joined) next.add(name);
    else next.delete(name);
  }
  for (const name of next) if (!state.allChannels.includes(name)) state.allChannels.push(name);
  state.allChannels.sort();
  state.joined = next;
  for (const name of state.joined) if (!before.has(name)) prefetchChannel(name);
  if (state.current && state.current.kind === 'channel' && !state.joined.has(state.current.name)) {
    closeThread();
  }
  renderChannels();
}

/** Direct messages received and not yet fetched this way: who wrote while we were away.
 * Fetching is read-only; the page then marks what it got as fetched, explicitly. */
async function fetchReceived({ live = false } = {}) {
  const list = await api.received();
  const messages = Array.isArray(list) ? list : [];
  ingestDirect(messages, { live });
  const seqs = messages.map((m) => Number(m && m.seq)).filter((seq) => Number.isFinite(seq));
  if (seqs.length) await api.markRead(Math.max(...seqs));
}

/** Every direct conversation (the last message of each), so the list is whole after a
 * reload or a new log-in, partners who are offline included. */
async function refreshConversations() {
  const data = await api.conversations();
  const list = Array.isArray(data && data.conversations) ? data.conversations : [];
  const lasts = [];
  for (const c of list) {
    if (!c || !c.with || !c.last) continue;
    state.partners.add(c.with);
    const t = thread('dm', c.with);
    // A conversation this browser has no marker for (a new log-in): read up to its last
    // message when the server counts nothing unread, or when that message is our own.
    if (getSeen(t.key) === null && (!c.unread || c.last.username === state.me)) setSeen(t.key, Number(c.last.ts) || 0);
    lasts.push(c.last);
  }
  ingestDirect(lasts, { live: false });
}

/** Direct messages on load: the conversations first (their unread counts are the
 * server's before fetchReceived marks messages read), then what arrived while away. */
async function loadDirect() {
  try {
    await refreshConversations();
  } catch (err) {
    showError(err, 'Conversations');
  }
  await fetchReceived();
}

async function refreshAll() {
  const results = await Promise.allSettled([refreshContacts(), refreshUsers(), refreshChannels()]);
  for (const r of results) if (r.status === 'rejected') showError(r.reason, 'Refreshing');
}

/** The latest page of a joined channel, so its unread count is known before opening it. */
async function prefetchChannel(name) {
  const t = thread('channel', name);
  if (t.loaded || t.loading) return;
  try {
    await loadLatest(t);
  } catch (err) {
    if (!(err instanceof ApiError && (err.status === 403 || err.status === 404))) showError(err, `#${name}`);
  }
}

async function loadLatest(t) {
  t.loading = true;
  try {
    if (t.kind === 'channel') {
      const data = await api.channelMessages(t.name, { limit: PAGE_SIZE });
      const view = data.messages || {};
      t.members = view.members || [];
      addMessages(t, (view.messages || []).map(fromChannel));
      t.hasMore = !!view.has_more;
    } else {
      const data = await api.conversation(t.name, { limit: PAGE_SIZE });
      const msgs = (data.messages || []).map(fromDirect);
      addMessages(t, msgs);
      t.hasMore = typeof data.has_more === 'boolean' ? data.has_more : msgs.length >= PAGE_SIZE;
    }
    t.loaded = true;
    t.error = null;
    if (t.kind === 'channel') initSeen(t);
  } finally {
    t.loading = false;
  }
  if (isCurrent(t)) {
    renderHeader();
    renderThread();
  }
  renderSidebarCounts();
}

async function loadOlder() {
  const t = currentThread();
  if (!t || t.loading || !t.hasMore || !t.list.length) return;
  t.loading = true;
  renderHistoryTop(t);
  const scroller = $('message-scroller');
  const fromBottom = scroller.scrollHeight - scroller.scrollTop;
  try {
    const first = t.list[0];
    let added;
    if (t.kind === 'channel') {
      const data = await api.channelMessages(t.name, { before: first.id, limit: PAGE_SIZE });
      const view = data.messages || {};
      added = addMessages(t, (view.messages || []).map(fromChannel));
      t.hasMore = !!view.has_more;
    } else {
      const cursor = first.seq !== undefined ? first.seq : first.id;
      const data = await api.conversation(t.name, { before: cursor, limit: PAGE_SIZE });
      const msgs = (data.messages || []).map(fromDirect);
      added = addMessages(t, msgs);
      t.hasMore = typeof data.has_more === 'boolean' ? data.has_more : msgs.length >= PAGE_SIZE;
      if (!added.length) t.hasMore = false; // the cursor did not move: stop asking
    }
  } catch (err) {
    showError(err, 'Loading older messages');
  } finally {
    t.loading = false;
  }
  if (isCurrent(t)) {
    renderThread();
    scroller.scrollTop = scroller.scrollHeight - fromBottom;
  }
}

/** Messages after the last one we have (polling, and catching up after a gap). */
async function catchUpChannel(name) {
  const t = thread('channel', name);
  if (!t.loaded) return loadLatest(t);
  let after = t.list.length ? t.list[t.list.length - 1].id : undefined;
  for (let round = 0; round < 10; round++) {
    const data = await api.channelMessages(name, after === undefined ? { limit: PAGE_SIZE } : { after, limit: 500 });
    const view = data.messages || {};
    t.members = view.members || t.members;
    const added = addMessages(t, (view.messages || []).map(fromChannel));
    onThreadGrew(t, added);
    if (!view.has_more || !added.length) break;
    after = t.list[t.list.length - 1].id;
  }
}

// === Incoming messages (stream or polling) ===

function ingestChannel(raw) {
  const m = fromChannel(raw);
  if (!raw.channel) return;
  const t = thread('channel', raw.channel);
  const added = addMessages(t, [m]);
  onThreadGrew(t, added);
}

function ingestDirect(rawList, { live }) {
  const grown = new Map();
  for (const raw of rawList) {
    if (!raw || raw.id === undefined) continue;
    const m = fromDirect(raw);
    const partner = partnerOf(m);
    if (!partner) continue;
    state.partners.add(partner);
    const t = thread('dm', partner);
    const added = addMessages(t, [m]);
    if (added.length) grown.set(t, [...(grown.get(t) || []), ...added]);
    else if (m.author === state.me && isCurrent(t)) updateStatusNode(m.id);
  }
  for (const [t, added] of grown) {
    onThreadGrew(t, added);
    if (live) {
      for (const m of added) {
        if (m.author !== state.me && !isCurrent(t)) {
          notify(`${m.broadcast ? 'Broadcast' : 'Message'} from ${m.author}: ${preview(m.text)}`, 'event');
        }
      }
    }
  }
  renderDMs();
}

function onThreadGrew(t, added) {
  if (!added || !added.length) return;
  if (isCurrent(t)) {
    const wasAtBottom = isAtBottom();
    const mine = added.some((m) => m.author === state.me);
    renderThread();
    if (wasAtBottom || mine) scrollToBottom();
    else $('jump-latest').hidden = false;
    markCurrentSeen();
  }
  renderSidebarCounts();
}

const preview = (text) => {
  const line = String(text).replace(/\s+/g, ' ').trim();
  return line.length > 60 ? `${line.slice(0, 57)}…` : line;
};

function onMembership(ev) {
  const { channel, username, joined } = ev;
  if (!channel || !username) return;
  if (username === state.me) {
    if (joined && !state.joined.has(channel)) {
      state.joined.add(channel);
      if (!state.allChannels.includes(channel)) state.allChannels = [...state.allChannels, channel].sort();
      prefetchChannel(channel);
    } else if (!joined && state.joined.has(channel)) {
      state.joined.delete(channel);
      if (state.current && state.current.kind === 'channel' && state.current.name === channel) closeThread();
    }
    renderChannels();
    return;
  }
  if (!state.allChannels.includes(channel)) {
    // A channel someone just created (its creator joins it).
    state.allChannels = [...state.allChannels, channel].sort();
    renderChannels();
  }
  const t = state.threads.get(keyOf('channel', channel));
  if (t) {
    const rest = t.members.filter((m) => m.username !== username);
    if (joined) {
      const online = state.users.has(username) || state.contacts.get(username)?.online || false;
      rest.push({ username, online });
    }
    t.members = rest;
    if (isCurrent(t)) renderHeader();
  }
  if (state.joined.has(channel)) notify(`${username} ${joined ? 'joined' : 'left'} #${channel}`, 'event');
}

let usersRefreshTimer = 0;
function onPresence(ev) {
  const { username, online, active } = ev;
  if (!username || username === state.me) return;
  const listed = state.users.get(username);
  if (listed) listed.active = !!active;
  const contact = state.contacts.get(username);
  if (contact) {
    if (contact.online !== online) notify(`${username} is ${online ? 'online' : 'offline'}`, 'event');
    contact.online = online;
  }
  for (const t of state.threads.values()) {
    if (t.kind !== 'channel') continue;
    const member = t.members.find((m) => m.username === username);
    if (member) member.online = online;
  }
  if (!online) state.users.delete(username);
  // The event has no address; /get-list has it.
  clearTimeout(usersRefreshTimer);
  usersRefreshTimer = setTimeout(() => refreshUsers().catch((err) => showError(err, 'Online users')), 300);
  renderUsers();
  renderDMs();
  renderHeader();
}

function onEvent(event) {
  let data;
  try {
    data = JSON.parse(event.data);
  } catch {
    return;
  }
  const type = (data && data.type) || event.type;
  switch (type) {
    case 'channel_message':
      ingestChannel(data);
      break;
    case 'direct_message':
      ingestDirect([data], { live: true });
      break;
    case 'membership':
      onMembership(data);
      break;
    case 'presence':
      onPresence(data);
      break;
    case 'reset':
      resync();
      break;
    default:
      break;
  }
}

/** Reload what the page shows (after a `reset` event or a gap in the stream). */
async function resync() {
  await refreshAll();
  const jobs = [...state.joined].map((name) => catchUpChannel(name).catch((err) => showError(err, `#${name}`)));
  jobs.push(loadDirect().catch((err) => showError(err, 'Direct messages')));
  const t = currentThread();
  if (t && t.kind === 'dm') {
    jobs.push(
      api
        .conversation(t.name, { limit: PAGE_SIZE })
        .then((data) => onThreadGrew(t, addMessages(t, (data.messages || []).map(fromDirect))))
        .catch((err) => showError(err, t.name)),
    );
  }
  await Promise.all(jobs);
}

// === Real time: EventSource, with polling when it keeps failing ===

const live = { es: null, failures: 0, pollTimer: 0, retryTimer: 0, refreshTimer: 0, polling: false, tick: 0, gap: false };

function setConn(mode) {
  const node = $('conn-status');
  node.dataset.state = mode;
  const labels = { connecting: 'Connecting…', live: 'Live', reconnecting: 'Reconnecting…', polling: 'Polling', offline: 'Offline' };
  const titles = {
    connecting: 'Connecting to the live stream',
    live: 'Connected: new messages arrive instantly',
    reconnecting: 'The live stream dropped; reconnecting',
    polling: 'The live stream is unavailable; checking every 3 seconds',
    offline: 'Cannot reach the server',
  };
  node.querySelector('.conn-label').textContent = labels[mode] || mode;
  node.title = titles[mode] || '';
}

function startEvents() {
  clearTimeout(live.retryTimer);
  if (!('EventSource' in window)) {
    startPolling();
    return;
  }
  const es = new EventSource('/events');
  live.es = es;
  if (!live.polling) setConn('connecting');
  es.addEventListener('open', () => {
    live.failures = 0;
    setConn('live');
    if (live.polling) stopPolling();
    if (live.gap) {
      live.gap = false;
      resync();
    }
  });
  for (const type of ['channel_message', 'direct_message', 'membership', 'presence', 'reset']) {
    es.addEventListener(type, onEvent);
  }
  es.addEventListener('message', onEvent);
  es.addEventListener('error', () => {
    if (live.es !== es) return;
    live.failures++;
    if (es.readyState === EventSource.CLOSED || live.failures >= SSE_MAX_FAILURES) {
      // The browser gave up (or keeps failing): poll, and try the stream again later.
      es.close();
      live.es = null;
      live.gap = true;
      checkSession();
      startPolling();
      live.retryTimer = setTimeout(startEvents, SSE_RETRY_MS);
    } else if (!live.polling) {
      setConn('reconnecting'); // EventSource retries by itself, with Last-Event-ID
    }
  });
}

async function checkSession() {
  try {
    await api.me(); // a 401 sends us to /login
  } catch {
    /* offline: polling will tell */
  }
}

function startPolling() {
  if (live.polling) return;
  live.polling = true;
  setConn('polling');
  scheduleRefresh();
  const poll = async () => {
    if (!live.polling) return;
    live.tick++;
    try {
      const jobs = [fetchReceived({ live: true })];
      const cur = state.current;
      if (cur && cur.kind === 'channel' && state.joined.has(cur.name)) jobs.push(catchUpChannel(cur.name));
      // Other joined channels less often, to keep their unread counts honest.
      if (live.tick % 5 === 0) {
        for (const name of state.joined) if (!cur || cur.name !== name || cur.kind !== 'channel') jobs.push(catchUpChannel(name));
      }
      await Promise.all(jobs);
      if (live.polling) setConn('polling');
    } catch (err) {
      if (err instanceof ApiError && err.status === 0) setConn('offline');
      else showError(err, 'Checking for messages');
    }
    if (live.polling) live.pollTimer = setTimeout(poll, POLL_MS);
  };
  live.pollTimer = setTimeout(poll, 0);
}

function stopPolling() {
  live.polling = false;
  clearTimeout(live.pollTimer);
  scheduleRefresh();
}

function scheduleRefresh() {
  clearInterval(live.refreshTimer);
  live.refreshTimer = setInterval(
    () => {
      if (!document.hidden) refreshAll();
    },
    live.polling ? REFRESH_POLLING_MS : REFRESH_MS,
  );
}

// === Rendering: sidebar ===

/**
 * Update a list to show `items`, keeping the existing element for every item that did
 * not change (so references, hover and focus survive), and keyboard focus on the same
 * control when its item was rebuilt.
 */
function rebuild(list, items) {
  const old = new Map();
  for (const child of list.children) if (!old.has(child.outerHTML)) old.set(child.outerHTML, child);
  const next = items.map((item) => {
    const same = old.get(item.outerHTML);
    if (same) {
      old.delete(item.outerHTML);
      return same;
    }
    return item;
  });
  const current = [...list.children];
  if (next.length === current.length && next.every((node, i) => node === current[i])) return;
  const active = document.activeElement;
  const focusKey = active && list.contains(active) ? active.dataset.focusKey : null;
  list.replaceChildren(...next);
  if (focusKey && document.activeElement !== active) {
    const again = list.querySelector(`[data-focus-key="${CSS.escape(focusKey)}"]`);
    if (again) again.focus();
  }
}

function badge(n, label) {
  if (!n) return null;
  return el('span', { class: 'badge', 'aria-label': `${n} unread ${label}`, 'data-testid': 'unread' }, n > 99 ? '99+' : String(n));
}

// One conversation in the sidebar: a channel or a direct-message partner, with its
// unread count unless it is the one open.
function navItem(kind, name, attrs, icon) {
  const t = thread(kind, name);
  const active = isCurrentKey(t.key);
  const n = active ? 0 : unreadCount(t);
  return el(
    'li',
    {},
    el(
      'button',
      {
        type: 'button',
        class: `nav-item${active ? ' active' : ''}${n ? ' has-unread' : ''}`,
        'aria-current': active ? 'page' : null,
        ...attrs,
        onclick: () => openThread(kind, name),
      },
      icon,
      el('span', { class: 'nav-label' }, name),
      badge(n, 'messages'),
    ),
  );
}

function renderChannels() {
  const joined = [...state.joined].sort();
  rebuild(
    $('joined-channels'),
    joined.map((name) =>
      navItem('channel', name, { 'data-testid': 'channel-item', 'data-channel': name, 'data-focus-key': `c:${name}` },
        el('span', { class: 'nav-icon', 'aria-hidden': 'true' }, '#')),
    ),
  );
  $('joined-empty').hidden = joined.length > 0;

  const others = state.allChannels.filter((name) => !state.joined.has(name));
  rebuild(
    $('all-channels'),
    others.map((name) =>
      el(
        'li',
        { class: 'browse-item', 'data-testid': 'browse-channel', 'data-channel': name },
        el('span', { class: 'nav-icon', 'aria-hidden': 'true' }, '#'),
        el('span', { class: 'nav-label' }, name),
        el(
          'button',
          {
            type: 'button',
            class: 'btn small',
            'data-testid': 'join-channel',
            'data-channel': name,
            'data-focus-key': `join:${name}`,
            'aria-label': `Join #${name}`,
            onclick: (e) => joinChannel(name, e.currentTarget),
          },
          'Join',
        ),
      ),
    ),
  );
  $('browse-count').textContent = others.length ? String(others.length) : '';
  $('browse-empty').hidden = others.length > 0 || state.allChannels.length === 0;
  renderTotalUnread();
}

function isOnline(name) {
  return state.users.has(name) || !!state.contacts.get(name)?.online;
}

/** Online with the chat open (an event stream), rather than only signed in. */
function isActive(name) {
  return !!state.users.get(name)?.active;
}

function presenceDot(name) {
  const online = isOnline(name);
  const active = online && isActive(name);
  const [cls, title] = active ? ['on', 'Online, chat open'] : online ? ['away', 'Online, away'] : ['off', 'Offline'];
  return el('span', { class: `presence ${cls}`, title },
    el('span', { class: 'visually-hidden' }, `(${title.toLowerCase()})`));
}

function renderDMs() {
  const names = [...state.partners].filter((n) => n && n !== state.me);
  // Most recent conversation first, then by name.
  const lastTs = (n) => {
    const t = state.threads.get(keyOf('dm', n));
    return t && t.list.length ? t.list[t.list.length - 1].ts : 0;
  };
  names.sort((a, b) => lastTs(b) - lastTs(a) || a.localeCompare(b));
  rebuild(
    $('dm-list'),
    names.map((name) =>
      navItem('dm', name, { 'data-testid': 'dm-item', 'data-user': name, 'data-focus-key': `u:${name}` },
        el('span', { class: 'avatar-wrap' }, avatar(name, 'sm'), presenceDot(name))),
    ),
  );
  $('dm-empty').hidden = names.length > 0;
  renderTotalUnread();
}

function renderUsers() {
  const users = [...state.users.values()].sort((a, b) => a.username.localeCompare(b.username));
  rebuild(
    $('user-list'),
    users.map((u) => {
      const name = u.username;
      const contact = state.contacts.has(name);
      return el(
        'li',
        { class: 'user-item', 'data-testid': 'user-item', 'data-user': name, title: `${name} on ${u.ip}:${u.port}` },
        el('span', { class: 'avatar-wrap' }, avatar(name, 'sm'), presenceDot(name)),
        el('span', { class: 'nav-label' }, name),
        el(
          'span',
          { class: 'user-actions' },
          contact
            ? el('span', { class: 'tag ok', title: 'In your contacts' }, icon('check'), el('span', { class: 'visually-hidden' }, 'contact'))
            : el(
                'button',
                {
                  type: 'button',
                  class: 'btn small icon-only',
                  'data-testid': 'connect-user',
                  'data-user': name,
                  'data-focus-key': `connect:${name}`,
                  'aria-label': `Connect to ${name}`,
                  title: `Connect: add ${name} to your contacts`,
                  onclick: (e) => connectTo(name, e.currentTarget),
                },
                icon('user-plus'),
              ),
          el(
            'button',
            {
              type: 'button',
              class: 'btn small primary',
              'data-testid': 'message-user',
              'data-user': name,
              'data-focus-key': `msg:${name}`,
              'aria-label': `Message ${name}`,
              onclick: () => {
                state.partners.add(name);
                renderDMs();
                openThread('dm', name);
              },
            },
            'Message',
          ),
        ),
      );
    }),
  );
  $('online-count').textContent = users.length ? String(users.length) : '';
  $('users-empty').hidden = users.length > 0;
}

function renderNotes() {
  const items = state.notes.map((n) =>
    el(
      'li',
      { class: `note note-${n.kind}`, 'data-testid': 'notification' },
      el('time', { datetime: new Date(n.ts).toISOString(), title: formatFull(n.ts) }, formatTime(n.ts)),
      el('span', { class: 'note-text', dir: 'auto' }, n.text),
    ),
  );
  replaceChildren($('notifications'), items);
  $('notes-empty').hidden = items.length > 0;
  $('notes-clear').hidden = items.length === 0;
}

function renderSidebarCounts() {
  renderChannels();
  renderDMs();
}

function renderTotalUnread() {
  let total = 0;
  for (const t of state.threads.values()) {
    if (isCurrentKey(t.key)) continue;
    if (t.kind === 'channel' && !state.joined.has(t.name)) continue;
    total += unreadCount(t);
  }
  const node = $('total-unread');
  node.hidden = total === 0;
  node.textContent = total > 99 ? '99+' : String(total);
  document.title = total ? `(${total}) WeApRous chat` : 'WeApRous chat';
  $('sidebar-toggle').setAttribute('aria-label', total ? `Open the menu (${total} unread)` : 'Open the menu');
}

// === Rendering: the open thread ===

const isCurrent = (t) => !!state.current && keyOf(state.current.kind, state.current.name) === t.key;
const isCurrentKey = (key) => !!state.current && keyOf(state.current.kind, state.current.name) === key;

function renderHeader() {
  const cur = state.current;
  const title = $('chat-title');
  const subtitle = $('chat-subtitle');
  const leave = $('leave-channel');
  const connect = $('connect-current');
  if (!cur) {
    title.textContent = 'Welcome';
    subtitle.textContent = state.me ? `Logged in as ${state.me}` : '';
    leave.hidden = true;
    connect.hidden = true;
    return;
  }
  const t = thread(cur.kind, cur.name);
  if (cur.kind === 'channel') {
    replaceChildren(title, el('span', { class: 'title-prefix', 'aria-hidden': 'true' }, '#'), cur.name);
    title.setAttribute('aria-label', `Channel ${cur.name}`);
    const members = t.members || [];
    const online = members.filter((m) => m.online).length;
    subtitle.textContent = members.length ? `${members.length} member${members.length === 1 ? '' : 's'} · ${online} online` : '';
    subtitle.title = members.map((m) => `${m.username}${m.online ? ' (online)' : ''}`).join(', ');
    leave.hidden = false;
    connect.hidden = true;
  } else {
    replaceChildren(title, el('span', { class: 'avatar-wrap' }, avatar(cur.name, 'sm'), presenceDot(cur.name)), cur.name);
    title.setAttribute('aria-label', `Conversation with ${cur.name}`);
    const online = isOnline(cur.name);
    const contact = state.contacts.has(cur.name);
    subtitle.textContent = `${online ? 'Online' : 'Offline: messages wait and are delivered later'}${contact ? '' : ' · not in your contacts'}`;
    subtitle.title = '';
    leave.hidden = true;
    connect.hidden = contact || !online;
  }
}

function renderHistoryTop(t) {
  $('load-older').hidden = !(t.loaded && t.hasMore) || t.loading;
  $('history-loading').hidden = !t.loading;
  const start = $('history-start');
  start.hidden = !t.loaded || t.hasMore || t.loading;
  if (t.kind === 'channel') start.textContent = t.list.length ? `This is the beginning of #${t.name}.` : `No messages in #${t.name} yet. Say hello!`;
  else start.textContent = t.list.length ? `This is the beginning of your conversation with ${t.name}.` : `No messages with ${t.name} yet. Say hello!`;
}

/** What the message list shows now, to append rather than rebuild when possible. */
const shown = { key: null, count: 0, firstId: null, lastId: null };

function renderThread() {
  const t = currentThread();
  if (!t) return;
  renderHistoryTop(t);
  const list = $('message-list');
  const n = t.list.length;
  const canAppend =
    shown.key === t.key &&
    shown.count > 0 &&
    n >= shown.count &&
    t.list[0].id === shown.firstId &&
    t.list[shown.count - 1].id === shown.lastId;
  if (canAppend) {
    for (let i = shown.count; i < n; i++) list.append(...messageNodes(t, t.list[i], t.list[i - 1]));
  } else {
    // Rebuilding empties the list for a moment, which would reset the scroll position:
    // keep the reader where they were, measured from the bottom (older messages are
    // inserted above).
    const scroller = $('message-scroller');
    const sameThread = shown.key === t.key;
    const atBottom = isAtBottom();
    const fromBottom = scroller.scrollHeight - scroller.scrollTop;
    list.setAttribute('aria-busy', 'true');
    const nodes = [];
    for (let i = 0; i < n; i++) nodes.push(...messageNodes(t, t.list[i], t.list[i - 1]));
    replaceChildren(list, nodes);
    list.removeAttribute('aria-busy');
    if (!sameThread || atBottom) scroller.scrollTop = scroller.scrollHeight;
    else scroller.scrollTop = scroller.scrollHeight - fromBottom;
  }
  shown.key = t.key;
  shown.count = n;
  shown.firstId = n ? t.list[0].id : null;
  shown.lastId = n ? t.list[n - 1].id : null;
}

function messageNodes(t, m, prev) {
  const nodes = [];
  if (!prev || dayKey(prev.ts) !== dayKey(m.ts)) {
    nodes.push(el('li', { class: 'day-sep', role: 'separator' }, el('span', {}, formatDay(m.ts))));
  }
  const mine = m.author === state.me;
  const grouped = prev && prev.author === m.author && m.ts - prev.ts < GROUP_MS && dayKey(prev.ts) === dayKey(m.ts) && !m.broadcast && !prev.broadcast;
  const time = el('time', { datetime: new Date(m.ts).toISOString(), title: formatFull(m.ts) }, formatTime(m.ts));
  const meta = el(
    'div',
    { class: 'msg-meta' },
    el('span', { class: 'msg-author' }, mine ? 'You' : m.author),
    time,
    m.broadcast ? el('span', { class: 'tag', title: 'Sent to every contact' }, icon('megaphone'), 'broadcast') : null,
  );
  // `dir="auto"` isolates the text's direction: a U+202E in it reorders only itself.
  const text = el('div', { class: 'msg-text', dir: 'auto', 'data-testid': 'message-text' }, m.text);
  const body = el('div', { class: 'msg-bubble' }, text);
  const status = t.kind === 'dm' && mine ? statusNode(m.id) : null;
  nodes.push(
    el(
      'li',
      {
        class: `msg${mine ? ' mine' : ''}${grouped ? ' grouped' : ''}`,
        'data-testid': 'message',
        'data-id': String(m.id),
        'data-sender': m.author,
      },
      mine ? null : avatar(m.author),
      el('div', { class: 'msg-main' }, meta, body, status),
    ),
  );
  return nodes;
}

function statusNode(id) {
  const s = state.delivery.get(String(id));
  if (!s) return null;
  const labels = { sending: 'Sending…', delivered: 'Delivered', queued: 'Queued: will be delivered when their peer answers' };
  const icons = { sending: 'clock', delivered: 'check', queued: 'clock' };
  return el('div', { class: `msg-status ${s}`, 'data-testid': 'delivery', 'data-state': s }, icon(icons[s]), labels[s]);
}

function updateStatusNode(id) {
  const li = $('message-list').querySelector(`li[data-id="${CSS.escape(String(id))}"]`);
  if (!li) return;
  const main = li.querySelector('.msg-main');
  const old = main.querySelector('.msg-status');
  const fresh = statusNode(id);
  if (old) old.remove();
  if (fresh) main.append(fresh);
}

function isAtBottom() {
  const s = $('message-scroller');
  return s.scrollHeight - s.scrollTop - s.clientHeight < 48;
}

function scrollToBottom() {
  const s = $('message-scroller');
  s.scrollTop = s.scrollHeight;
  $('jump-latest').hidden = true;
}

function openThread(kind, name, { focus = true } = {}) {
  if (kind === 'channel' && !state.joined.has(name)) return;
  state.current = { kind, name };
  if (kind === 'dm') state.partners.add(name);
  const t = thread(kind, name);
  $('welcome').hidden = true;
  $('thread').hidden = false;
  $('composer-input').placeholder = kind === 'channel' ? `Message #${name}` : `Message ${name}`;
  shown.key = null;
  $('jump-latest').hidden = true;
  renderHeader();
  renderThread();
  scrollToBottom();
  renderSidebarCounts();
  closeSidebar({ restoreFocus: false });
  try {
    history.replaceState(null, '', `#${kind === 'channel' ? 'c' : 'u'}/${encodeURIComponent(name)}`);
    localStorage.setItem(`weaprous:${state.me}:last`, `${kind}:${name}`);
  } catch {
    /* ignore */
  }
  if (focus && !NARROW.matches) $('composer-input').focus();
  if (!t.loaded && !t.loading) {
    renderHistoryTop({ ...t, loading: true });
    loadLatest(t)
      .then(() => {
        if (isCurrent(t)) {
          scrollToBottom();
          markCurrentSeen();
        }
      })
      .catch((err) => {
        showError(err, kind === 'channel' ? `#${name}` : `Conversation with ${name}`);
        if (isCurrent(t)) renderHistoryTop(t);
      });
  } else {
    markCurrentSeen();
  }
}

function closeThread() {
  state.current = null;
  shown.key = null;
  $('thread').hidden = true;
  $('welcome').hidden = false;
  renderHeader();
  renderSidebarCounts();
  try {
    history.replaceState(null, '', location.pathname);
  } catch {
    /* ignore */
  }
}

// === Actions ===

async function withBusy(button, job) {
  if (button) {
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
  }
  try {
    return await job();
  } finally {
    if (button && button.isConnected) {
      button.disabled = false;
      button.removeAttribute('aria-busy');
    }
  }
}

async function joinChannel(name, button) {
  try {
    await withBusy(button, () => api.joinChannel(name));
    noteMembershipChange(name, true);
    state.joined.add(name);
    renderChannels();
    notify(`Joined #${name}`);
    openThread('channel', name);
    refreshChannels().catch(() => {});
  } catch (err) {
    showError(err, `Joining #${name}`);
    refreshChannels().catch(() => {});
  }
}

async function leaveCurrentChannel() {
  const cur = state.current;
  if (!cur || cur.kind !== 'channel') return;
  if (!window.confirm(`Leave #${cur.name}? You can join it again later.`)) return;
  try {
    await withBusy($('leave-channel'), () => api.leaveChannel(cur.name));
    noteMembershipChange(cur.name, false);
    state.joined.delete(cur.name);
    state.threads.delete(keyOf('channel', cur.name));
    closeThread();
    renderChannels();
    notify(`Left #${cur.name}`);
    refreshChannels().catch(() => {});
  } catch (err) {
    showError(err, `Leaving #${cur.name}`);
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
    await withBusy(event.submitter || null, () => api.createChannel(name));
    input.value = '';
    toggleCreateForm(false);
    noteMembershipChange(name, true);
    state.joined.add(name);
    if (!state.allChannels.includes(name)) state.allChannels = [...state.allChannels, name].sort();
    renderChannels();
    notify(`Created #${name}`);
    openThread('channel', name);
    refreshChannels().catch(() => {});
  } catch (err) {
    if (err instanceof ApiError && err.status === 409) fail(`#${name} already exists: join it under “Browse channels”.`);
    else if (err instanceof ApiError && err.status >= 400 && err.status < 500) fail(err.message);
    else showError(err, 'Creating the channel');
  }
}

function toggleCreateForm(open) {
  const form = $('create-channel-form');
  const toggle = $('new-channel-toggle');
  const show = open ?? form.hidden;
  form.hidden = !show;
  toggle.setAttribute('aria-expanded', String(show));
  if (show) $('new-channel-name').focus();
  else $('create-channel-error').hidden = true;
}

async function connectTo(name, button) {
  try {
    const data = await withBusy(button, () => api.connect(name));
    notify(data && data.message ? `${name}: ${data.message}` : `Connected to ${name}`);
    state.partners.add(name);
    await refreshContacts();
  } catch (err) {
    if (err instanceof ApiError && err.status === 502) showError(err, `${name}'s peer did not answer`);
    else showError(err, `Connecting to ${name}`);
  }
}

let sending = false;

async function sendMessage(event) {
  if (event) event.preventDefault();
  const cur = state.current;
  const input = $('composer-input');
  if (!cur || sending) return;
  const text = input.value.replace(/\s+$/u, '');
  if (!text.trim()) {
    input.focus();
    return;
  }
  const length = charCount(text);
  if (length > MAX_MESSAGE_CHARS) {
    toast(`That message is ${length} characters long; the limit is ${MAX_MESSAGE_CHARS}.`);
    return;
  }
  sending = true;
  const button = $('composer-send');
  button.disabled = true;
  $('composer').setAttribute('aria-busy', 'true');
  try {
    const t = thread(cur.kind, cur.name);
    if (cur.kind === 'channel') {
      const data = await api.sendChannel(cur.name, text);
      const added = addMessages(t, [{ id: Number(data.id), author: state.me, text, ts: Number(data.ts) || Date.now(), channel: cur.name }]);
      onThreadGrew(t, added);
    } else {
      const { data } = await api.sendPeer(cur.name, text);
      const id = String(data.id);
      const known = state.delivery.get(id);
      if (known !== 'delivered') state.delivery.set(id, data.delivered === false ? 'queued' : 'delivered');
      const added = addMessages(t, [{ id, author: state.me, to: cur.name, text, ts: Date.now(), broadcast: false, local: true }]);
      if (added.length) onThreadGrew(t, added);
      else updateStatusNode(id);
      if (data.delivered === false) notify(`${cur.name} is not reachable now; your message is queued and will be retried.`);
      renderDMs();
    }
    // Clear what was sent, keeping anything typed meanwhile.
    if (input.value.startsWith(text)) input.value = input.value.slice(text.length).trimStart();
    updateComposer();
  } catch (err) {
    showError(err, 'Message not sent');
  } finally {
    sending = false;
    button.disabled = false;
    $('composer').removeAttribute('aria-busy');
    if (!NARROW.matches || document.activeElement === input) input.focus();
  }
}

function updateComposer() {
  const input = $('composer-input');
  const max = Math.round(window.innerHeight * 0.4);
  input.style.height = 'auto';
  input.style.height = `${Math.min(input.scrollHeight, max)}px`;
  input.style.overflowY = input.scrollHeight > max ? 'auto' : 'hidden';
  const n = charCount(input.value);
  const count = $('composer-count');
  if (n > MAX_MESSAGE_CHARS - 500) {
    count.textContent = `${n} / ${MAX_MESSAGE_CHARS}`;
    count.classList.toggle('over', n > MAX_MESSAGE_CHARS);
  } else {
    count.textContent = '';
    count.classList.remove('over');
  }
}

function openBroadcast() {
  const dialog = $('broadcast-dialog');
  const n = state.contacts.size;
  $('broadcast-info').textContent = n
    ? `One direct message to each of your ${n} contact${n === 1 ? '' : 's'}.`
    : 'You have no contacts yet: press “Connect” next to someone online first.';
  $('broadcast-error').hidden = true;
  if (typeof dialog.showModal === 'function') dialog.showModal();
  else dialog.setAttribute('open', '');
  $('broadcast-input').focus();
}

function closeBroadcast() {
  const dialog = $('broadcast-dialog');
  if (typeof dialog.close === 'function') dialog.close();
  else dialog.removeAttribute('open');
  $('broadcast-open').focus();
}

async function sendBroadcast(event) {
  event.preventDefault();
  const input = $('broadcast-input');
  const error = $('broadcast-error');
  const text = input.value.replace(/\s+$/u, '');
  const fail = (message) => {
    error.textContent = message;
    error.hidden = false;
  };
  if (!text.trim()) return fail('Write a message first.');
  if (charCount(text) > MAX_MESSAGE_CHARS) return fail(`The limit is ${MAX_MESSAGE_CHARS} characters.`);
  try {
    const data = await withBusy($('broadcast-send'), () => api.broadcast(text));
    input.value = '';
    closeBroadcast();
    const queued = Number(data.queued) || 0;
    notify(`Broadcast sent: ${Number(data.delivered) || 0} delivered${queued ? `, ${queued} queued` : ''}.`);
  } catch (err) {
    fail(err instanceof ApiError ? err.message : 'Could not send the broadcast.');
  }
}

async function logout() {
  try {
    await withBusy($('logout'), () => api.logout());
  } catch {
    /* the session may already be gone; leave anyway */
  }
  window.location.assign('/login');
}

// === Sidebar on narrow screens ===

function openSidebar() {
  const app = $('app');
  app.classList.add('sidebar-open');
  $('backdrop').hidden = false;
  $('sidebar-toggle').setAttribute('aria-expanded', 'true');
  $('sidebar-close').focus();
}

function closeSidebar({ restoreFocus = true } = {}) {
  const app = $('app');
  if (!app.classList.contains('sidebar-open')) return;
  app.classList.remove('sidebar-open');
  $('backdrop').hidden = true;
  $('sidebar-toggle').setAttribute('aria-expanded', 'false');
  if (restoreFocus) $('sidebar-toggle').focus();
}

// === Start ===

function wireUp() {
  $('sidebar-toggle').addEventListener('click', openSidebar);
  $('welcome-menu').addEventListener('click', openSidebar);
  $('sidebar-close').addEventListener('click', () => closeSidebar());
  $('backdrop').addEventListener('click', () => closeSidebar());
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && $('app').classList.contains('sidebar-open')) closeSidebar();
  });
  NARROW.addEventListener('change', () => closeSidebar({ restoreFocus: false }));

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
  $('connect-current').addEventListener('click', (e) => {
    if (state.current && state.current.kind === 'dm') connectTo(state.current.name, e.currentTarget).then(renderHeader);
  });
  $('notes-clear').addEventListener('click', () => {
    state.notes = [];
    renderNotes();
  });

  const input = $('composer-input');
  $('composer').addEventListener('submit', sendMessage);
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      sendMessage();
    }
  });
  input.addEventListener('input', updateComposer);

  const scroller = $('message-scroller');
  // Cheap checks on every scroll (no requestAnimationFrame: hidden windows throttle it).
  scroller.addEventListener(
    'scroll',
    () => {
      if (isAtBottom()) {
        $('jump-latest').hidden = true;
        markCurrentSeen();
      }
      const t = currentThread();
      if (t && scroller.scrollTop < 80 && t.hasMore && !t.loading && t.loaded) loadOlder();
    },
    { passive: true },
  );
  $('load-older').addEventListener('click', loadOlder);
  $('jump-latest').addEventListener('click', () => {
    scrollToBottom();
    markCurrentSeen();
  });

  $('broadcast-open').addEventListener('click', openBroadcast);
  $('broadcast-cancel').addEventListener('click', closeBroadcast);
  $('broadcast-form').addEventListener('submit', sendBroadcast);
  $('broadcast-input').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) sendBroadcast(e);
  });
  $('logout').addEventListener('click', logout);

  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) {
      markCurrentSeen();
      if (!live.es && !live.polling) startEvents();
    }
  });
  window.addEventListener('online', () => {
    if (!live.es) startEvents();
  });
}

function restoreThread() {
  const hash = decodeURIComponent(location.hash.slice(1));
  let kind;
  let name;
  const m = /^([cu])\/(.+)$/.exec(hash);
  if (m) {
    kind = m[1] === 'c' ? 'channel' : 'dm';
    name = m[2];
  } else {
    try {
      const last = localStorage.getItem(`weaprous:${state.me}:last`);
      const mm = last && /^(channel|dm):(.+)$/.exec(last);
      if (mm && !NARROW.matches) {
        kind = mm[1];
        name = mm[2];
      }
    } catch {
      /* ignore */
    }
  }
  if (!kind || !NAME_RE.test(name)) return;
  if (kind === 'channel' && !state.joined.has(name)) return;
  openThread(kind, name, { focus: false });
}

async function main() {
  wireUp();
  renderNotes();
  let me;
  try {
    me = await api.me();
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return; // going to /login
    $('app').dataset.state = 'error';
    showError(err, 'Cannot load your session');
    setConn('offline');
    setTimeout(() => window.location.reload(), 5000);
    return;
  }
  state.me = me.username;
  state.peer = me.peer || '';
  $('me-name').textContent = state.me;
  $('me-peer').textContent = state.peer ? `on ${state.peer}` : '';
  $('welcome-name').textContent = state.me;
  const meAvatar = avatar(state.me);
  meAvatar.id = 'me-avatar';
  $('me-avatar').replaceWith(meAvatar);
  renderHeader();

  startEvents(); // first, so nothing that happens while we load is missed
  scheduleRefresh();
  const results = await Promise.allSettled([refreshContacts(), refreshUsers(), refreshChannels(), loadDirect()]);
  for (const r of results) if (r.status === 'rejected') showError(r.reason, 'Loading');
  $('app').dataset.state = 'ready';
  restoreThread();
}

main();
