// The open conversation: its header, its messages (appended when possible, rebuilt
// otherwise), the reader's place in it (kept on the newest message while the window
// resizes, e.g. a phone keyboard opening), and its read marker.

import { el, replaceChildren, formatTime, formatFull, formatDay, dayKey, avatar, icon } from '../ui.js';
import { state, subscribe, changed, currentThread, getSeen, setSeen, markOf, isOnline, isActive, lastSeen, newestReceivedSeq, readUpTo } from '../store.js';
import { api } from '../api.js';
import { render as renderRich } from '../markdown.js';
import { presenceDot, presenceText } from './presence.js';
import { replyQuote, reactionsRow, messageTools } from './actions.js';

const GROUP_MS = 5 * 60_000; // consecutive messages of one sender within this are grouped
const $ = (id) => document.getElementById(id);

/** What the message list shows now, to append rather than rebuild when possible. */
const shown = { key: null, count: 0, firstId: null, lastId: null };
/** Whether the "new since you left" line is in the list already (per rebuild). */
const divider = { placed: false };
/** Whether the reader is at the newest message (then resizes and new messages keep them there). */
let pinned = true;

export function isAtBottom() {
  const s = $('message-scroller');
  return s.scrollHeight - s.scrollTop - s.clientHeight < 48;
}

export function scrollToBottom() {
  const s = $('message-scroller');
  s.scrollTop = s.scrollHeight;
  pinned = true;
  $('jump-latest').hidden = true;
}

/** Mark the open thread read when the reader can actually see its end. */
export function markCurrentSeen() {
  const t = currentThread();
  const real = t ? t.list.filter((m) => !m.pending) : [];
  if (!real.length || document.hidden || !isAtBottom()) return;
  if (t.kind === 'dm' || t.lastRead !== undefined) {
    // Read state lives on the server: every page of this user follows (`read` event).
    const upTo = newestReceivedSeq(t);
    if (t.loaded && readUpTo(t, upTo)) {
      changed('dms', 'channels');
      const request = t.kind === 'dm' ? api.markRead(upTo, t.name) : api.markChannelRead(t.name, upTo);
      request.catch(() => {});
    }
    return;
  }
  const last = markOf(t, real[real.length - 1]);
  if ((getSeen(t.key) ?? -1) < last) {
    setSeen(t.key, last);
    changed('channels', 'dms');
  }
}

/** A new thread is open: show it from its newest message. */
export function threadOpened() {
  shown.key = null;
  pinned = true;
  $('jump-latest').hidden = true;
}

export function renderHeader() {
  const cur = state.current;
  const title = $('chat-title');
  const subtitle = $('chat-subtitle');
  const leave = $('leave-channel');
  $('set-topic').hidden = !cur || cur.kind !== 'channel';
  $('invite').hidden = !cur || cur.kind !== 'channel';
  if (!cur) {
    title.textContent = 'Welcome';
    title.removeAttribute('aria-label');
    subtitle.textContent = state.me ? `Logged in as ${state.me}` : '';
    leave.hidden = true;
    return;
  }
  const t = currentThread();
  if (cur.kind === 'channel') {
    replaceChildren(title, el('span', { class: 'title-prefix', 'aria-hidden': 'true' }, t.private ? '🔒' : '#'), cur.name);
    title.setAttribute('aria-label', `${t.private ? 'Private channel' : 'Channel'} ${cur.name}`);
    const members = t.members || [];
    const online = members.filter((m) => m.online).length;
    const people = members.length ? `${members.length} member${members.length === 1 ? '' : 's'} · ${online} online` : '';
    subtitle.textContent = t.topic ? `${t.topic}${people ? ` · ${people}` : ''}` : people;
    subtitle.dataset.topic = t.topic || '';
    subtitle.title = members.map((m) => `${m.username}${m.online ? ' (online)' : ''}`).join(', ');
    leave.hidden = false;
    leave.setAttribute('aria-label', `Leave #${cur.name}`);
  } else {
    replaceChildren(title, el('span', { class: 'avatar-wrap' }, avatar(cur.name, 'sm'), presenceDot(cur.name)), cur.name);
    title.setAttribute('aria-label', `Conversation with ${cur.name}`);
    const reachable = isOnline(cur.name) || isActive(cur.name);
    subtitle.textContent = `${presenceText(cur.name, lastSeen(cur.name))}${reachable ? '' : ': messages wait and are delivered when they are back'}`;
    subtitle.title = '';
    leave.hidden = true;
  }
}

function renderHistoryTop(t) {
  $('load-older').hidden = !(t.loaded && t.hasMore) || t.loading;
  $('history-loading').hidden = !t.loading;
  const start = $('history-start');
  start.hidden = !t.loaded || t.hasMore || t.loading;
  const any = t.list.length > 0;
  if (t.kind === 'channel') start.textContent = any ? `This is the beginning of #${t.name}.` : `No messages in #${t.name} yet. Say hello!`;
  else start.textContent = any ? `This is the beginning of your conversation with ${t.name}.` : `No messages with ${t.name} yet. Say hello!`;
}

export function renderThread() {
  const t = currentThread();
  if (!t) return;
  renderHistoryTop(t);
  const list = $('message-list');
  const scroller = $('message-scroller');
  const n = t.list.length;
  const wasPinned = pinned;
  const before = shown.key === t.key ? shown.lastId : undefined;
  const canAppend =
    !t.dirty && shown.key === t.key && shown.count > 0 && n >= shown.count && t.list[0].id === shown.firstId && t.list[shown.count - 1].id === shown.lastId;
  if (canAppend) {
    for (let i = shown.count; i < n; i++) list.append(...messageNodes(t, t.list[i], t.list[i - 1]));
  } else {
    // Rebuilding empties the list for a moment: keep the reader's place, measured from
    // the bottom (older messages are inserted above).
    const sameThread = shown.key === t.key;
    const fromBottom = scroller.scrollHeight - scroller.scrollTop;
    const nodes = [];
    divider.placed = false;
    for (let i = 0; i < n; i++) nodes.push(...messageNodes(t, t.list[i], t.list[i - 1]));
    replaceChildren(list, nodes);
    if (sameThread && !wasPinned) scroller.scrollTop = scroller.scrollHeight - fromBottom;
  }
  t.dirty = false;
  const grewAtEnd = n > 0 && before !== undefined && t.list[n - 1].id !== before;
  shown.key = t.key;
  shown.count = n;
  shown.firstId = n ? t.list[0].id : null;
  shown.lastId = n ? t.list[n - 1].id : null;
  const mineLast = n > 0 && t.list[n - 1].author === state.me && grewAtEnd;
  if (wasPinned || mineLast) scrollToBottom();
  else if (grewAtEnd) $('jump-latest').hidden = false;
  markCurrentSeen();
}

function messageNodes(t, m, prev) {
  const nodes = [];
  if (!prev || dayKey(prev.ts) !== dayKey(m.ts)) {
    nodes.push(el('li', { class: 'day-sep' }, el('span', {}, formatDay(m.ts))));
  }
  const mine = m.author === state.me;
  // The first message that arrived since the reader last read this conversation.
  const mark = t.kind === 'dm' ? m.seq : m.id;
  const before = nodes.length;
  if (!divider.placed && t.newSince !== null && t.newSince !== undefined && !mine && !m.pending && mark !== undefined && mark > t.newSince) {
    divider.placed = true;
    nodes.push(el('li', { class: 'new-since', 'data-testid': 'new-since' }, el('span', {}, 'New since you left')));
  }
  const grouped =
    nodes.length === before &&
    prev && prev.author === m.author && m.ts - prev.ts < GROUP_MS && dayKey(prev.ts) === dayKey(m.ts) && !m.broadcast && !prev.broadcast;
  const time = el('time', { datetime: new Date(m.ts).toISOString(), title: formatFull(m.ts) }, formatTime(m.ts));
  const meta = el(
    'div',
    { class: 'msg-meta' },
    el('span', { class: 'msg-author' }, mine ? 'You' : m.author),
    time,
    m.editedAt && !m.deleted
      ? el('span', { class: 'msg-edited', title: `Edited ${formatFull(m.editedAt)}`, 'data-testid': 'edited' }, '(edited)')
      : null,
    m.broadcast ? el('span', { class: 'tag', title: 'Sent to each of their contacts' }, icon('megaphone'), 'broadcast') : null,
  );
  // `dir="auto"` isolates the text's direction: a U+202E in it reorders only itself.
  const text = el('div', { class: 'msg-text', dir: 'auto', 'data-testid': 'message-text' }, m.deleted ? null : renderRich(m.text));
  const body = el(
    'div',
    { class: `msg-bubble${m.deleted ? ' deleted' : ''}` },
    replyQuote(t, m),
    text,
    m.deleted ? el('span', { class: 'msg-tombstone', 'data-testid': 'tombstone' }, 'This message was deleted') : null,
  );
  const status = mine ? statusNode(t, m) : null;
  nodes.push(
    el(
      'li',
      {
        class: `msg${mine ? ' mine' : ''}${grouped ? ' grouped' : ''}${m.pending ? ' pending' : ''}`,
        'data-testid': 'message',
        'data-id': String(m.id),
        'data-sender': m.author,
      },
      mine ? null : avatar(m.author),
      el('div', { class: 'msg-main' }, meta, body, reactionsRow(t, m), status, messageTools(t, m)),
    ),
  );
  return nodes;
}

const LABELS = {
  sending: 'Sending…',
  waiting: 'Not sent yet: it goes as soon as the connection is back',
  delivered: 'Delivered',
  queued: 'Stored: delivered when their peer answers',
};
const ICONS = { sending: 'clock', waiting: 'clock', delivered: 'check', queued: 'clock' };

function statusNode(t, m) {
  const s = m.pending || (t.kind === 'dm' ? state.delivery.get(String(m.id)) : null);
  if (!s) return null;
  return el('div', { class: `msg-status ${s}`, 'data-testid': 'delivery', 'data-state': s }, icon(ICONS[s]), LABELS[s]);
}

/** A delivery receipt arrived for a message already shown. */
export function updateStatus(id) {
  const t = currentThread();
  const li = $('message-list').querySelector(`li[data-id="${CSS.escape(String(id))}"]`);
  const m = t && t.byId.get(id);
  if (!li || !m) return;
  const main = li.querySelector('.msg-main');
  main.querySelector('.msg-status')?.remove();
  const fresh = statusNode(t, m);
  if (fresh) main.append(fresh);
}

export function setupThread({ loadOlder }) {
  subscribe('thread', renderThread);
  subscribe('header', renderHeader);
  subscribe('users', renderHeader);
  const scroller = $('message-scroller');
  scroller.addEventListener(
    'scroll',
    () => {
      pinned = isAtBottom();
      if (pinned) {
        $('jump-latest').hidden = true;
        markCurrentSeen();
      }
      const t = currentThread();
      if (t && scroller.scrollTop < 80 && t.hasMore && !t.loading && t.loaded) loadOlder();
    },
    { passive: true },
  );
  // The window or the keyboard changed the scroller's height: stay on the newest
  // message if the reader was there.
  const keep = () => {
    if (pinned) scroller.scrollTop = scroller.scrollHeight;
  };
  new ResizeObserver(keep).observe(scroller);
  if (window.visualViewport) window.visualViewport.addEventListener('resize', keep);
  $('load-older').addEventListener('click', loadOlder);
  $('jump-latest').addEventListener('click', () => {
    scrollToBottom();
    markCurrentSeen();
  });
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) markCurrentSeen();
  });
}
