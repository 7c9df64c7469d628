// Loading what the page shows, and taking in what arrives (events, polling, resyncs).
// Everything here changes the store and says which topics changed; views redraw.

import { api, ApiError } from './api.js';
import {
  state, changed, thread, keyOf, isCurrent, currentThread, addMessages, fromChannel, fromDirect, partnerOf,
  initSeen, notify, sawActive, readUpTo,
} from './store.js';
import { updateStatus } from './views/thread.js';
import { stoppedTyping } from './views/typing.js';
import { desktopAlert } from './views/alerts.js';

const PAGE_SIZE = 50;
const RECENT_MS = 5000;
/** Pages of history carry each message's whole state: copies held take it. */
const HISTORY = { refresh: true };

/** Errors go to the notifications; `report` is set by app.js (it also toasts). */
export const errors = { report: (err, context) => console.warn(context, err) };

export async function refreshUsers() {
  const list = await api.users();
  const users = new Map();
  for (const u of Array.isArray(list) ? list : []) {
    if (!u || !u.username || u.username === state.me) continue;
    // Only what the page shows: never the peer's address.
    users.set(u.username, { username: u.username, active: !!u.active });
    if (u.active) sawActive(u.username);
  }
  state.users = users;
  for (const c of state.contacts.values()) c.online = users.has(c.username) || c.online;
  changed('users', 'header');
}

export async function refreshContacts() {
  const list = await api.contacts();
  state.contacts = new Map();
  for (const c of Array.isArray(list) ? list : []) {
    if (c && c.username) {
      state.contacts.set(c.username, { username: c.username, online: !!c.online });
      state.partners.add(c.username);
    }
  }
  changed('users', 'dms', 'header');
}

/** Channels joined or left here in the last few seconds: a list fetched just before
 * that change must not undo it. name -> {joined, at} */
const recentChanges = new Map();

export function noteMembershipChange(name, joined) {
  recentChanges.set(name, { joined, at: Date.now() });
}

export async function refreshChannels() {
  const [all, joined] = await Promise.all([api.allChannels(), api.joinedChannels()]);
  const next = new Set(joined.channels || []);
  for (const [name, change] of recentChanges) {
    if (Date.now() - change.at > RECENT_MS) recentChanges.delete(name);
    else if (change.joined) next.add(name);
    else next.delete(name);
  }
  // The tracker's read state, where it has one (`summaries`).
  for (const s of Array.isArray(joined.summaries) ? joined.summaries : []) {
    if (!s || !s.name) continue;
    const t = thread('channel', s.name);
    t.lastRead = Math.max(t.lastRead || 0, Number(s.last_read) || 0);
    t.serverUnread = Number(s.unread) || 0;
    t.mentions = Number(s.mentions) || 0;
    t.topic = s.topic || '';
    t.private = !!s.private;
  }
  const before = state.joined;
  state.allChannels = [...new Set([...(all.channels || []), ...next])].sort();
  state.joined = next;
  for (const name of next) if (!before.has(name)) prefetchChannel(name);
  changed('channels');
}

/** Direct messages received and not read yet (read-only: they are marked read per
 * conversation as the user sees them). */
export async function fetchReceived({ live = false } = {}) {
  const list = await api.received();
  ingestDirect(Array.isArray(list) ? list : [], { live });
}

/** Every direct conversation (its last message), offline partners included. */
async function refreshConversations() {
  const data = await api.conversations();
  const lasts = [];
  for (const c of Array.isArray(data && data.conversations) ? data.conversations : []) {
    if (!c || !c.with || !c.last) continue;
    state.partners.add(c.with);
    const t = thread('dm', c.with);
    // The server's read state (the same on every page of this user).
    t.lastRead = Math.max(t.lastRead || 0, Number(c.last_read) || 0);
    t.serverUnread = Number(c.unread) || 0;
    lasts.push(c.last);
  }
  ingestDirect(lasts, { live: false });
}

/** The conversations first (their unread counts are the server's before fetchReceived
 * marks messages read), then what arrived while away. */
export async function loadDirect() {
  try {
    await refreshConversations();
  } catch (err) {
    errors.report(err, 'Conversations');
  }
  await fetchReceived();
}

export async function refreshAll() {
  const results = await Promise.allSettled([refreshContacts(), refreshUsers(), refreshChannels()]);
  for (const r of results) if (r.status === 'rejected') errors.report(r.reason, 'Refreshing');
}

async function prefetchChannel(name) {
  const t = thread('channel', name);
  if (t.loaded || t.loading) return;
  try {
    await loadLatest(t);
  } catch (err) {
    if (!(err instanceof ApiError && (err.status === 403 || err.status === 404))) errors.report(err, `#${name}`);
  }
}

export async function loadLatest(t) {
  t.loading = true;
  try {
    if (t.kind === 'channel') {
      const view = (await api.channelMessages(t.name, { limit: PAGE_SIZE })).messages || {};
      t.members = view.members || [];
      addMessages(t, (view.messages || []).map(fromChannel), HISTORY);
      t.hasMore = !!view.has_more;
    } else {
      const data = await api.conversation(t.name, { limit: PAGE_SIZE });
      const msgs = (data.messages || []).map(fromDirect);
      addMessages(t, msgs, HISTORY);
      t.hasMore = typeof data.has_more === 'boolean' ? data.has_more : msgs.length >= PAGE_SIZE;
    }
    t.loaded = true;
    if (t.kind === 'channel') initSeen(t);
  } finally {
    t.loading = false;
  }
  if (isCurrent(t)) changed('header', 'thread');
  changed(t.kind === 'channel' ? 'channels' : 'dms');
}

export async function loadOlder() {
  const t = currentThread();
  const first = t && t.list.find((m) => !m.pending);
  if (!t || t.loading || !t.hasMore || !first) return;
  t.loading = true;
  changed('thread');
  try {
    if (t.kind === 'channel') {
      const view = (await api.channelMessages(t.name, { before: first.id, limit: PAGE_SIZE })).messages || {};
      addMessages(t, (view.messages || []).map(fromChannel), HISTORY);
      t.hasMore = !!view.has_more;
    } else {
      const cursor = first.seq !== undefined ? first.seq : first.id;
      const data = await api.conversation(t.name, { before: cursor, limit: PAGE_SIZE });
      const added = addMessages(t, (data.messages || []).map(fromDirect), HISTORY);
      t.hasMore = added.length > 0 && (typeof data.has_more === 'boolean' ? data.has_more : added.length >= PAGE_SIZE);
    }
  } catch (err) {
    errors.report(err, 'Loading older messages');
  } finally {
    t.loading = false;
  }
  if (isCurrent(t)) changed('thread');
}

/** Messages after the last one we have (polling, and catching up after a gap). */
export async function catchUpChannel(name) {
  const t = thread('channel', name);
  if (!t.loaded) return loadLatest(t);
  let after = t.list.filter((m) => !m.pending).at(-1)?.id;
  for (let round = 0; round < 10; round++) {
    const view = (await api.channelMessages(name, after === undefined ? { limit: PAGE_SIZE } : { after, limit: 500 })).messages || {};
    t.members = view.members || t.members;
    const added = addMessages(t, (view.messages || []).map(fromChannel), HISTORY);
    grew(t, added);
    if (!view.has_more || !added.length) break;
    after = t.list.filter((m) => !m.pending).at(-1).id;
  }
}

function grew(t, added) {
  if (!added || !added.length) return;
  for (const m of added) {
    if (m.author === state.me) continue;
    sawActive(m.author, m.ts);
    stoppedTyping(t.kind, t.name, m.author);
  }
  if (isCurrent(t)) changed('thread');
  changed(t.kind === 'channel' ? 'channels' : 'dms');
}

export function ingestChannel(raw) {
  if (!raw.channel) return;
  const t = thread('channel', raw.channel);
  const added = addMessages(t, [fromChannel(raw)]);
  // Beyond the page held, the server's count grows with it.
  if (added.length && t.serverUnread && raw.username !== state.me) t.serverUnread++;
  grew(t, added);
}

/** `mention`: someone named this user in a channel. */
export function onMention(ev) {
  if (!ev.channel || !ev.username) return;
  const t = thread('channel', ev.channel);
  if (isCurrent(t) && !document.hidden) return;
  if (isCurrent(t)) {
    desktopAlert(`${ev.username} in #${ev.channel}`, preview(ev.text || ''), `#c/${encodeURIComponent(ev.channel)}`);
    return;
  }
  t.mentions = (t.mentions || 0) + 1;
  notify(`${ev.username} mentioned you in #${ev.channel}: ${preview(ev.text || '')}`, 'event');
  desktopAlert(`${ev.username} in #${ev.channel}`, preview(ev.text || ''), `#c/${encodeURIComponent(ev.channel)}`);
  changed('channels');
}

export function ingestDirect(rawList, { live }) {
  for (const raw of rawList) {
    if (!raw || raw.id === undefined) continue;
    const m = fromDirect(raw);
    const partner = partnerOf(m);
    if (!partner) continue;
    state.partners.add(partner);
    const t = thread('dm', partner);
    const added = addMessages(t, [m]);
    if (!added.length) {
      if (m.author === state.me && isCurrent(t)) updateStatus(m.id);
      continue;
    }
    if (live && !t.loaded && m.author !== state.me && m.seq !== undefined && m.seq > (t.lastRead || 0)) t.serverUnread = (t.serverUnread || 0) + 1;
    grew(t, added);
    if (live && m.author !== state.me) desktopAlert(`${m.author}`, preview(m.text), `#u/${encodeURIComponent(m.author)}`);
    if (live && m.author !== state.me && !isCurrent(t)) {
      notify(`${m.broadcast ? 'Broadcast' : 'Message'} from ${m.author}: ${preview(m.text)}`, 'event');
    }
  }
  changed('dms');
}

const preview = (text) => {
  const line = String(text).replace(/\s+/g, ' ').trim();
  return line.length > 60 ? `${line.slice(0, 57)}…` : line;
};

export function onMembership(ev, { closeThread }) {
  const { channel, username, joined } = ev;
  if (!channel || !username) return;
  if (username === state.me) {
    if (joined && !state.joined.has(channel)) {
      state.joined.add(channel);
      if (!state.allChannels.includes(channel)) state.allChannels = [...state.allChannels, channel].sort();
      prefetchChannel(channel);
      // Invited, perhaps to a private channel: its summary says.
      refreshChannels().catch(() => {});
    } else if (!joined && state.joined.has(channel)) {
      state.joined.delete(channel);
      if (state.current && state.current.kind === 'channel' && state.current.name === channel) closeThread();
    }
    changed('channels');
    return;
  }
  if (!state.allChannels.includes(channel)) {
    state.allChannels = [...state.allChannels, channel].sort();
    changed('channels');
  }
  const t = state.threads.get(keyOf('channel', channel));
  if (t) {
    t.members = t.members.filter((m) => m.username !== username);
    if (joined) t.members.push({ username, online: state.users.has(username) || !!state.contacts.get(username)?.online });
    if (isCurrent(t)) changed('header');
  }
  if (state.joined.has(channel)) notify(`${username} ${joined ? 'joined' : 'left'} #${channel}`, 'event');
}

let usersRefreshTimer = 0;

export function onPresence(ev) {
  const { username, online, active } = ev;
  if (!username || username === state.me) return;
  const listed = state.users.get(username);
  if (listed) {
    // Active to inactive: that was the last time we saw them.
    if (listed.active || active) sawActive(username);
    listed.active = !!active;
  } else if (online) {
    state.users.set(username, { username, active: !!active });
    if (active) sawActive(username);
  }
  const contact = state.contacts.get(username);
  if (contact) {
    if (contact.online !== online) notify(`${username} is ${online ? 'online' : 'offline'}`, 'event');
    contact.online = online;
  }
  for (const t of state.threads.values()) {
    const member = t.kind === 'channel' && t.members.find((m) => m.username === username);
    if (member) member.online = online;
  }
  if (!online) state.users.delete(username);
  clearTimeout(usersRefreshTimer);
  usersRefreshTimer = setTimeout(() => refreshUsers().catch((err) => errors.report(err, 'People online')), 300);
  changed('users', 'dms', 'header');
}

/** `channel_updated`: a channel's topic (or privacy) changed. */
export function onChannelUpdated(ev) {
  if (!ev.channel) return;
  const t = thread('channel', ev.channel);
  t.topic = ev.topic || '';
  t.private = !!ev.private;
  if (isCurrent(t)) changed('header');
}

/** `read`: this user read a conversation up to a message, on some page of theirs. */
export function onRead(ev) {
  if (ev.up_to === undefined || !(ev.with || ev.channel)) return;
  const t = ev.channel ? thread('channel', ev.channel) : thread('dm', ev.with);
  if (readUpTo(t, Number(ev.up_to))) changed('dms', 'channels');
}

/** Reload what the page shows (after a `reset` event or a gap in the stream). */
export async function resync() {
  await refreshAll();
  const jobs = [...state.joined].map((name) => catchUpChannel(name).catch((err) => errors.report(err, `#${name}`)));
  jobs.push(loadDirect().catch((err) => errors.report(err, 'Direct messages')));
  // The open conversation's latest page again: edits, deletions and reactions made
  // while the stream was down.
  const t = currentThread();
  if (t && t.loaded) {
    const page =
      t.kind === 'dm'
        ? api.conversation(t.name, { limit: PAGE_SIZE }).then((data) => (data.messages || []).map(fromDirect))
        : api.channelMessages(t.name, { limit: PAGE_SIZE }).then((data) => ((data.messages || {}).messages || []).map(fromChannel));
    jobs.push(
      page
        .then((msgs) => {
          grew(t, addMessages(t, msgs, HISTORY));
          if (t.dirty && isCurrent(t)) changed('thread');
        })
        .catch((err) => errors.report(err, t.name)),
    );
  }
  await Promise.all(jobs);
}

/** One polling round (when the stream cannot work). */
let tick = 0;
export async function pollOnce() {
  tick++;
  const jobs = [fetchReceived({ live: true })];
  const cur = state.current;
  for (const name of state.joined) {
    const open = cur && cur.kind === 'channel' && cur.name === name;
    if (open || tick % 5 === 0) jobs.push(catchUpChannel(name));
  }
  await Promise.all(jobs);
}
