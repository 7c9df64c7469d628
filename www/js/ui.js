// Small DOM helpers. User text only ever goes in through textContent (via `el`'s
// string children or `text`), never through innerHTML.

/**
 * Create an element.
 * @param {string} tag
 * @param {Record<string, unknown>} [props] attributes; `class`, `text`, `dataset`, `on*` handled specially
 * @param {...(Node|string|null|undefined|false)} children strings become text nodes
 */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') node.className = String(value);
    else if (key === 'text') node.textContent = String(value);
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') node.addEventListener(key.slice(2), value);
    else if (value === true) node.setAttribute(key, '');
    else node.setAttribute(key, String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else node.append(typeof child === 'string' ? document.createTextNode(child) : child);
  }
}

/** Replace all children of `node`. */
export function replaceChildren(node, ...children) {
  node.replaceChildren();
  append(node, children);
}

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dayFormat = new Intl.DateTimeFormat(undefined, { weekday: 'long', day: 'numeric', month: 'long', year: 'numeric' });
const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });

export const formatTime = (ms) => timeFormat.format(new Date(ms));
export const formatFull = (ms) => fullFormat.format(new Date(ms));

/** "Today", "Yesterday" or a full date. */
export function formatDay(ms) {
  const date = new Date(ms);
  const today = new Date();
  const startOf = (d) => new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime();
  const diff = Math.round((startOf(today) - startOf(date)) / 86_400_000);
  if (diff === 0) return 'Today';
  if (diff === 1) return 'Yesterday';
  return dayFormat.format(date);
}

export const dayKey = (ms) => {
  const d = new Date(ms);
  return `${d.getFullYear()}-${d.getMonth()}-${d.getDate()}`;
};

/** A stable hue for a name, so each person keeps one avatar colour. */
export function hueOf(name) {
  // FNV-1a, then the golden angle, so "user1" and "user2" get far-apart colours.
  let hash = 0x811c9dc5;
  for (const ch of String(name)) hash = Math.imul(hash ^ ch.codePointAt(0), 0x01000193) >>> 0;
  return Math.round((hash % 1024) * 137.508) % 360;
}

/** One or two letters for an avatar: "Nguyen_Van" → "NV", "user2" → "U2", "alice" → "A". */
export function initialsOf(name) {
  const text = String(name || '?');
  const parts = text.split(/[_.\-\s]+/u).filter(Boolean);
  const first = (s) => (Array.from(s)[0] || '').toUpperCase();
  if (parts.length >= 2) return first(parts[0]) + first(parts[1]);
  const digits = /(\d)\d*$/u.exec(text);
  if (digits && digits.index > 0) return first(text) + text.slice(-1);
  return first(text) || '?';
}

/** A round avatar with the name's first letter (any script, emoji-safe). */
export function avatar(name, size = '') {
  const node = el('span', { class: `avatar ${size}`.trim(), 'aria-hidden': 'true', text: initialsOf(name) });
  node.style.setProperty('--hue', String(hueOf(name)));
  return node;
}

/** An inline SVG icon from the sprite in index.html. */
export function icon(name, label) {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('class', 'icon');
  svg.setAttribute('viewBox', '0 0 24 24');
  if (label) {
    svg.setAttribute('role', 'img');
    svg.setAttribute('aria-label', label);
  } else {
    svg.setAttribute('aria-hidden', 'true');
  }
  const use = document.createElementNS(ns, 'use');
  use.setAttribute('href', `#i-${name}`);
  svg.append(use);
  return svg;
}

/** Count characters as the server does (Unicode scalar values, not UTF-16 units). */
export const charCount = (text) => Array.from(text).length;
