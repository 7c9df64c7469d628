// How a person's presence reads: active (their chat is open), away (signed in, the
// chat closed or idle for a few minutes), offline; with "last seen" where known.

import { el } from '../ui.js';
import { isOnline, isActive, lastSeen } from '../store.js';

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });

/** "just now", "5 minutes ago", "yesterday"… */
export function ago(ts, now = Date.now()) {
  const s = Math.max(0, Math.round((now - ts) / 1000));
  if (s < 60) return 'just now';
  const m = Math.round(s / 60);
  if (m < 60) return relative.format(-m, 'minute');
  const h = Math.round(m / 60);
  if (h < 24) return relative.format(-h, 'hour');
  return relative.format(-Math.round(h / 24), 'day');
}

/** 'active' | 'away' | 'offline' */
export function presenceOf(name) {
  if (isActive(name)) return 'active';
  if (isOnline(name)) return 'away';
  return 'offline';
}

/** "Active now", "Away · last seen 5 minutes ago", "Offline". */
export function presenceText(name, seen = lastSeen(name)) {
  const p = presenceOf(name);
  if (p === 'active') return 'Active now';
  const when = seen ? ` · last seen ${ago(seen)}` : '';
  return `${p === 'away' ? 'Away' : 'Offline'}${when}`;
}

export function presenceDot(name) {
  const p = presenceOf(name);
  const cls = p === 'active' ? 'on' : p === 'away' ? 'away' : 'off';
  const text = presenceText(name);
  return el('span', { class: `presence ${cls}`, title: text, 'data-presence': p }, el('span', { class: 'visually-hidden' }, `(${text})`));
}
