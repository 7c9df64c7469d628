// "alice is typing…": the page tells the server at most every 2 s while the user types
// (the server forwards at most one per 2 s too), and shows who types in the open
// conversation until 5 s after their last notice.

import { api } from '../api.js';
import { state, subscribe } from '../store.js';

const SEND_EVERY_MS = 2000;
const SHOW_FOR_MS = 5000;
const $ = (id) => document.getElementById(id);

/** Thread key -> (username -> time of their last notice). */
const typers = new Map();
let lastSent = { key: '', at: 0 };
let timer = 0;

/** The user typed in the open conversation. */
export function typed() {
  const cur = state.current;
  if (!cur) return;
  const key = `${cur.kind}:${cur.name}`;
  const now = Date.now();
  if (lastSent.key === key && now - lastSent.at < SEND_EVERY_MS) return;
  lastSent = { key, at: now };
  const request = cur.kind === 'channel' ? api.typing(undefined, cur.name) : api.typing(cur.name);
  request.catch(() => {}); // a hint, not a message: nothing to retry or report
}

/** A `typing` event: `{username, to?, channel?}`. */
export function onTyping(ev) {
  if (!ev.username || ev.username === state.me) return;
  const key = ev.channel ? `channel:${ev.channel}` : `dm:${ev.username}`;
  if (!typers.has(key)) typers.set(key, new Map());
  typers.get(key).set(ev.username, Date.now());
  render();
}

/** Someone's message arrived: they stopped typing it. */
export function stoppedTyping(kind, name, username) {
  const who = typers.get(`${kind}:${name}`);
  if (who && who.delete(username)) render();
}

function render() {
  clearTimeout(timer);
  const cur = state.current;
  const now = Date.now();
  const who = cur ? typers.get(`${cur.kind}:${cur.name}`) : null;
  const names = [];
  let next = Infinity;
  for (const [name, at] of who || []) {
    if (now - at < SHOW_FOR_MS) {
      names.push(name);
      next = Math.min(next, at + SHOW_FOR_MS - now);
    } else {
      who.delete(name);
    }
  }
  names.sort();
  const text =
    names.length === 0 ? '' : names.length === 1 ? `${names[0]} is typing…` : names.length === 2 ? `${names[0]} and ${names[1]} are typing…` : 'Several people are typing…';
  const node = $('typing');
  if (node.textContent !== text) node.textContent = text;
  if (Number.isFinite(next)) timer = setTimeout(render, next + 50);
}

export function setupTyping() {
  subscribe('header', render);
}
