// The sidebar: joined channels (with unread counts), channels to join, direct
// conversations, the people signed in, notifications; and, on narrow screens, the
// sidebar as a sliding panel.

import { el, replaceChildren, formatTime, formatFull, avatar, icon } from '../ui.js';
import { state, subscribe, thread, keyOf, isCurrentKey, unreadCount } from '../store.js';
import { presenceDot, presenceText, presenceOf } from './presence.js';

const $ = (id) => document.getElementById(id);
const NARROW = window.matchMedia('(max-width: 760px)');

/**
 * Update a list to show `items`, keeping the existing element for every item that did
 * not change (so hover and focus survive), and keyboard focus on the same control when
 * its item was rebuilt.
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

function badge(n) {
  if (!n) return null;
  return el('span', { class: 'badge', 'aria-label': `${n} unread`, 'data-testid': 'unread' }, n > 99 ? '99+' : String(n));
}

/** One conversation: a channel or a person, with its unread count unless it is open. */
function navItem(kind, name, attrs, lead, extra, actions) {
  const t = thread(kind, name);
  const active = isCurrentKey(t.key);
  const n = active ? 0 : unreadCount(t);
  return el(
    'li',
    {},
    el(
      'a',
      {
        href: `#${kind === 'channel' ? 'c' : 'u'}/${encodeURIComponent(name)}`,
        class: `nav-item${active ? ' active' : ''}${n ? ' has-unread' : ''}`,
        'aria-current': active ? 'page' : null,
        ...attrs,
      },
      lead,
      el('span', { class: 'nav-label' }, name, extra),
      !active && t.mentions ? el('span', { class: 'badge mention', 'aria-label': `${t.mentions} mentioning you`, 'data-testid': 'mentions' }, '@') : null,
      badge(n),
    ),
    actions,
  );
}

export function renderChannels(actions) {
  const joined = [...state.joined].sort();
  rebuild(
    $('joined-channels'),
    joined.map((name) =>
      navItem('channel', name, { 'data-testid': 'channel-item', 'data-channel': name, 'data-focus-key': `c:${name}` },
        el('span', { class: 'nav-icon', 'aria-hidden': 'true' }, thread('channel', name).private ? '🔒' : '#'),
        thread('channel', name).private ? el('span', { class: 'visually-hidden' }, ' (private)') : null),
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
            onclick: (e) => actions.join(name, e.currentTarget),
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

export function renderDMs() {
  const names = [...state.partners].filter((n) => n && n !== state.me);
  const lastTs = (n) => state.threads.get(keyOf('dm', n))?.list.at(-1)?.ts || 0;
  names.sort((a, b) => lastTs(b) - lastTs(a) || a.localeCompare(b));
  rebuild(
    $('dm-list'),
    names.map((name) =>
      navItem(
        'dm',
        name,
        { 'data-testid': 'dm-item', 'data-user': name, 'data-focus-key': `u:${name}`, title: presenceText(name) },
        el('span', { class: 'avatar-wrap' }, avatar(name, 'sm'), presenceDot(name)),
        state.contacts.has(name) ? el('span', { class: 'visually-hidden' }, ' (contact: gets your broadcasts)') : null,
      ),
    ),
  );
  $('dm-empty').hidden = names.length > 0;
  renderTotalUnread();
}

export function renderUsers(actions) {
  const users = [...state.users.values()].sort(
    (a, b) => (presenceOf(a.username) === 'active' ? 0 : 1) - (presenceOf(b.username) === 'active' ? 0 : 1) || a.username.localeCompare(b.username),
  );
  rebuild(
    $('user-list'),
    users.map((u) => {
      const name = u.username;
      const contact = state.contacts.has(name);
      return el(
        'li',
        { class: 'user-item', 'data-testid': 'user-item', 'data-user': name },
        el('span', { class: 'avatar-wrap' }, avatar(name, 'sm'), presenceDot(name)),
        el(
          'span',
          { class: 'nav-label user-label' },
          name,
          el('span', { class: 'user-sub' }, presenceText(name), contact ? ' · contact' : ''),
        ),
        el(
          'span',
          { class: 'user-actions' },
          el(
            'button',
            {
              type: 'button',
              class: 'btn small primary',
              'data-testid': 'message-user',
              'data-user': name,
              'data-focus-key': `msg:${name}`,
              'aria-label': `Message ${name}`,
              title: contact ? `Message ${name}` : `Message ${name}: they also become a contact and get your broadcasts`,
              onclick: (e) => actions.message(name, e.currentTarget),
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

export function renderNotes() {
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
  $('total-unread-label').hidden = total === 0;
}

const CONN = {
  connecting: ['Connecting…', 'Connecting to the live stream'],
  live: ['Live', 'Connected: new messages arrive instantly'],
  reconnecting: ['Reconnecting…', 'The live stream dropped; reconnecting'],
  polling: ['Polling', 'The live stream is unavailable; checking every 3 seconds'],
  offline: ['Offline', 'Cannot reach the server; unsent messages wait and go when it is back'],
};

function renderConn() {
  const node = $('conn-status');
  node.dataset.state = state.conn;
  const [label, title] = CONN[state.conn] || [state.conn, ''];
  node.querySelector('.conn-label').textContent = label;
  node.title = title;
}

export function openSidebar() {
  $('app').classList.add('sidebar-open');
  $('backdrop').hidden = false;
  $('sidebar-toggle').setAttribute('aria-expanded', 'true');
  $('sidebar-close').focus();
}

export function closeSidebar({ restoreFocus = true } = {}) {
  const app = $('app');
  if (!app.classList.contains('sidebar-open')) return;
  app.classList.remove('sidebar-open');
  $('backdrop').hidden = true;
  $('sidebar-toggle').setAttribute('aria-expanded', 'false');
  if (restoreFocus) $('sidebar-toggle').focus();
}

export const isNarrow = () => NARROW.matches;

/** `actions`: {join(name, button), message(name, button)} */
export function setupSidebar(actions) {
  subscribe('channels', () => renderChannels(actions));
  subscribe('dms', renderDMs);
  subscribe('users', () => {
    renderUsers(actions);
    renderDMs();
  });
  subscribe('notes', renderNotes);
  subscribe('conn', renderConn);
  $('sidebar-toggle').addEventListener('click', openSidebar);
  $('welcome-menu').addEventListener('click', openSidebar);
  $('sidebar-close').addEventListener('click', () => closeSidebar());
  $('backdrop').addEventListener('click', () => closeSidebar());
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && $('app').classList.contains('sidebar-open')) closeSidebar();
  });
  NARROW.addEventListener('change', () => closeSidebar({ restoreFocus: false }));
  // The open conversation's link changes nothing in the address: close the menu anyway.
  $('sidebar').addEventListener('click', (e) => {
    const link = e.target.closest('a.nav-item');
    if (link && link.getAttribute('href') === location.hash) closeSidebar();
  });
  $('notes-clear').addEventListener('click', () => {
    state.notes = [];
    renderNotes();
  });
  // Presence reads "5 minutes ago": keep it current.
  setInterval(() => {
    renderUsers(actions);
    renderDMs();
  }, 60_000);
}
