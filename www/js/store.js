// The page's state, and who to tell when it changes. Views subscribe to topics
// ('channels', 'dms', 'users', 'notes', 'header', 'thread', 'conn'); modules that
// change the state call `changed(topic)`, and each view redraws once per frame-ish tick.

/** @typedef {{id: string|number, author: string, text: string, ts: number, broadcast?: boolean, to?: string, seq?: number, local?: boolean, pending?: string}} Msg */

export const state = {
  me: '',
  /** online users other than me: name -> {username, active} */
  users: new Map(),
  /** my contacts (they get my broadcasts): name -> {username, online} */
  contacts: new Map(),
  /** people I have a conversation with in this page (contacts plus whoever wrote) */
  partners: new Set(),
  allChannels: [],
  joined: new Set(),
  /** threads: "c:name" or "u:name" -> Thread */
  threads: new Map(),
  /** the open thread: {kind: 'channel'|'dm', name} */
  current: null,
  /** DM id -> 'delivered' | 'queued' */
  delivery: new Map(),
  notes: [],
  /** the live connection: 'connecting' | 'live' | 'reconnecting' | 'polling' | 'offline' */
  conn: 'connecting',
};

// === Subscriptions ===

const subscribers = new Map();
const pending = new Set();
let scheduled = false;

/** Call `fn` after any `changed(topic)` (batched: once per tick for many changes). */
export function subscribe(topic, fn) {
  if (!subscribers.has(topic)) subscribers.set(topic, []);
  subscribers.get(topic).push(fn);
}

/** Say that what `topics` show changed. */
export function changed(...topics) {
  for (const topic of topics) pending.add(topic);
  if (scheduled) return;
  scheduled = true;
  // A microtask, not requestAnimationFrame: hidden tabs throttle frames, and the
  // browser tests read the page of a background window.
  queueMicrotask(flush);
}

/** Run the subscribers of every pending topic now. */
export function flush() {
  scheduled = false;
  const topics = [...pending];
  pending.clear();
  for (const topic of topics) for (const fn of subscribers.get(topic) || []) fn();
}

// === Threads ===

export const keyOf = (kind, name) => `${kind === 'channel' ? 'c' : 'u'}:${name}`;

export function thread(kind, name) {
  const key = keyOf(kind, name);
  let t = state.threads.get(key);
  if (!t) {
    t = { kind, name, key, byId: new Map(), list: [], loaded: false, loading: false, hasMore: false, members: [] };
    state.threads.set(key, t);
  }
  return t;
}

export const currentThread = () => (state.current ? thread(state.current.kind, state.current.name) : null);
export const isCurrentKey = (key) => !!state.current && keyOf(state.current.kind, state.current.name) === key;
export const isCurrent = (t) => isCurrentKey(t.key);

/** What edits, deletions, replies and reactions add to a message (issue 13). */
function extras(m, idOf) {
  const more = {};
  if (m.edited_at) more.editedAt = Number(m.edited_at);
  if (m.deleted) more.deleted = true;
  if (m.reply_to !== undefined && m.reply_to !== null) {
    more.replyTo = idOf(m.reply_to);
    if (m.reply) more.reply = { id: idOf(m.reply.id), author: m.reply.username, text: m.reply.text || '', deleted: !!m.reply.deleted };
  }
  if (Array.isArray(m.reactions) && m.reactions.length) more.reactions = m.reactions;
  return more;
}

export function fromChannel(m) {
  return { id: Number(m.id), author: m.username, text: m.text, ts: Number(m.ts) || 0, channel: m.channel, ...extras(m, Number) };
}

export function fromDirect(m) {
  const msg = { id: String(m.id), author: m.username, to: m.to, text: m.message, ts: Number(m.ts) || 0, broadcast: !!m.broadcast, ...extras(m, String) };
  if (m.seq !== undefined && m.seq !== null) msg.seq = Number(m.seq);
  if (typeof m.delivered === 'boolean' && m.username === state.me && state.delivery.get(msg.id) !== 'delivered') {
    state.delivery.set(msg.id, m.delivered ? 'delivered' : 'queued');
  }
  return msg;
}

export const partnerOf = (m) => (m.author === state.me ? m.to : m.author);

function compare(kind) {
  // Messages still in the outbox (pending) go last, in the order they were written.
  const tail = (a, b) => (a.pending ? 1 : 0) - (b.pending ? 1 : 0) || (a.pending && b.pending ? a.ts - b.ts : 0);
  if (kind === 'channel') return (a, b) => tail(a, b) || a.id - b.id;
  return (a, b) => {
    const pend = tail(a, b);
    if (pend) return pend;
    if (a.seq !== undefined && b.seq !== undefined && a.seq !== b.seq) return a.seq - b.seq;
    if (a.ts !== b.ts) return a.ts - b.ts;
    return String(a.id) < String(b.id) ? -1 : String(a.id) > String(b.id) ? 1 : 0;
  };
}

/** Add messages to a thread, skipping ids it already has. Returns the new ones.
 * `refresh`: the messages come from a history page, which carries their whole state
 * (edits, tombstone, reactions), so a copy already held takes it; other sources (the
 * received list, events of new messages) do not, and never overwrite it. */
export function addMessages(t, msgs, { refresh = false } = {}) {
  const added = [];
  for (const m of msgs) {
    const existing = t.byId.get(m.id);
    if (existing) {
      // A local echo of our own send: take the server's time and sequence.
      if (existing.local && !m.local) Object.assign(existing, m, { local: false });
      // A fresher copy from the server (after a gap): its edits, reactions, tombstone.
      else if (refresh && !m.local && changeKey(m) !== changeKey(existing)) {
        updateMessage(t, m.id, { ...m, reactions: m.reactions || [] });
      }
      continue;
    }
    t.byId.set(m.id, m);
    added.push(m);
  }
  if (added.length) {
    t.list.push(...added);
    t.list.sort(compare(t.kind));
  }
  return added;
}

const changeKey = (m) => JSON.stringify([m.editedAt || 0, !!m.deleted, m.text, m.reactions || []]);

/** Apply a change (an edit, a deletion, reactions) to a message the thread holds; the
 * thread is redrawn whole next time (`dirty`). */
export function updateMessage(t, id, change) {
  const m = t.byId.get(id);
  if (!m) return false;
  if (change.deleted) {
    delete m.reactions;
    m.text = '';
  }
  if ('reactions' in change && !(change.reactions || []).length) delete m.reactions;
  Object.assign(m, change);
  if (m.reactions && !m.reactions.length) delete m.reactions;
  // Replies quoting it show its new text.
  for (const other of t.list) {
    if (other.reply && other.reply.id === id) {
      other.reply = { ...other.reply, text: m.deleted ? '' : m.text.slice(0, 200), deleted: !!m.deleted };
    }
  }
  t.dirty = true;
  return true;
}

/** Take a message out of a thread (an outbox entry once the server has it). */
export function removeMessage(t, id) {
  if (!t.byId.delete(id)) return;
  t.list = t.list.filter((m) => m.id !== id);
}

// === "Seen" markers (unread counts survive a reload) ===

const seenKey = (key) => `weaprous:${state.me}:seen:${key}`;

export function getSeen(key) {
  try {
    const raw = localStorage.getItem(seenKey(key));
    return raw === null ? null : Number(raw);
  } catch {
    return null;
  }
}

export function setSeen(key, value) {
  try {
    localStorage.setItem(seenKey(key), String(value));
  } catch {
    /* private mode: counts just won't survive a reload */
  }
}

export const markOf = (t, m) => (t.kind === 'channel' ? m.id : m.ts);

export function unreadCount(t) {
  if (t.kind === 'dm') {
    // The server's read state: messages received after the last one read (by `seq`,
    // on any of the user's pages); for a conversation not loaded yet, its count.
    let n = 0;
    for (const m of t.list) if (m.author !== state.me && !m.pending && m.seq !== undefined && m.seq > (t.lastRead || 0)) n++;
    return t.loaded ? n : Math.max(n, t.serverUnread || 0);
  }
  if (t.lastRead !== undefined) {
    // A channel with the tracker's read state: messages from others after the last read.
    let n = 0;
    for (const m of t.list) if (m.author !== state.me && !m.pending && !m.deleted && m.id > t.lastRead) n++;
    return Math.max(n, t.serverUnread || 0);
  }
  const seen = getSeen(t.key) ?? 0;
  let n = 0;
  for (let i = t.list.length - 1; i >= 0; i--) {
    const m = t.list[i];
    if (m.pending) continue;
    if (markOf(t, m) <= seen) break;
    if (m.author !== state.me) n++;
  }
  return n;
}

/** The newest received message's `seq` in a direct conversation, or the newest
 * message's id in a channel (0: none): what "read up to here" names. */
export function newestReceivedSeq(t) {
  let seq = 0;
  if (t.kind === 'channel') {
    for (const m of t.list) if (!m.pending && m.id > seq) seq = m.id;
    return seq;
  }
  for (const m of t.list) if (m.author !== state.me && m.seq !== undefined && m.seq > seq) seq = m.seq;
  return seq;
}

/** The user read a direct conversation up to `upTo` (here, or on another page). */
export function readUpTo(t, upTo) {
  if (upTo <= (t.lastRead || 0)) return false;
  t.lastRead = upTo;
  if (upTo >= newestReceivedSeq(t)) {
    t.serverUnread = 0;
    t.mentions = 0;
  }
  return true;
}

/** First time we see a channel: its history so far counts as read. */
export function initSeen(t) {
  const real = t.list.filter((m) => !m.pending);
  if (getSeen(t.key) === null && real.length) setSeen(t.key, markOf(t, real[real.length - 1]));
}

// === Presence: active (chat open), away (signed in, chat closed), last seen ===

const lastSeenKey = () => `weaprous:${state.me}:last-seen`;

function lastSeenMap() {
  try {
    return JSON.parse(localStorage.getItem(lastSeenKey()) || '{}') || {};
  } catch {
    return {};
  }
}

/** Remember that `name` was seen active (or wrote) at `ts`. */
export function sawActive(name, ts = Date.now()) {
  const map = lastSeenMap();
  if ((map[name] || 0) >= ts) return;
  map[name] = ts;
  try {
    localStorage.setItem(lastSeenKey(), JSON.stringify(map));
  } catch {
    /* ignore */
  }
}

export const lastSeen = (name) => lastSeenMap()[name] || 0;
export const isOnline = (name) => state.users.has(name) || !!state.contacts.get(name)?.online;
export const isActive = (name) => !!state.users.get(name)?.active;

// === Notifications ===

export function notify(text, kind = 'info') {
  state.notes.unshift({ text, kind, ts: Date.now() });
  if (state.notes.length > 50) state.notes.length = 50;
  changed('notes');
}
