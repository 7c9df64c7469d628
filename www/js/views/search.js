// Search: the box at the top of the sidebar asks `POST /search`; each result names its
// conversation, author and time, shows the snippet with the matching words marked
// (built from the server's segments, never as HTML), and opens the conversation at
// that message.

import { api, ApiError } from '../api.js';
import { el, replaceChildren, formatFull, formatDay, formatTime } from '../ui.js';
import { thread } from '../store.js';
import { jumpTo } from './actions.js';

const $ = (id) => document.getElementById(id);

/** Set by app.js: open a conversation (kind, name). */
export const searchHooks = { open: () => {} };

function snippet(segments) {
  return el(
    'span',
    { class: 'search-snippet', dir: 'auto' },
    (segments || []).map((s) => (s.hit ? el('mark', {}, String(s.text)) : String(s.text))),
  );
}

function result(r) {
  const kind = r.kind === 'channel' ? 'channel' : 'dm';
  const name = kind === 'channel' ? r.channel : r.with;
  const id = kind === 'channel' ? Number(r.id) : String(r.id);
  const where = kind === 'channel' ? `#${name}` : name;
  const ts = Number(r.ts) || 0;
  return el(
    'li',
    {},
    el(
      'a',
      {
        href: `#${kind === 'channel' ? 'c' : 'u'}/${encodeURIComponent(name)}`,
        class: 'search-result',
        'data-testid': 'search-result',
        'data-id': String(r.id),
        onclick: (e) => {
          e.preventDefault();
          open(kind, name, id);
        },
      },
      el(
        'span',
        { class: 'search-meta' },
        el('strong', {}, where),
        ` · ${r.username} · `,
        el('time', { datetime: new Date(ts).toISOString(), title: formatFull(ts) }, `${formatDay(ts)} ${formatTime(ts)}`),
      ),
      snippet(r.snippet),
    ),
  );
}

async function open(kind, name, id) {
  searchHooks.open(kind, name);
  const t = thread(kind, name);
  // Wait (bounded) for the conversation's first page, then go to the message.
  for (let i = 0; i < 100 && !t.loaded; i++) await new Promise((resolve) => setTimeout(resolve, 50));
  await new Promise((resolve) => setTimeout(resolve, 0));
  jumpTo(t, id);
}

async function run(q) {
  const box = $('search-results');
  const status = $('search-status');
  box.hidden = false;
  status.textContent = 'Searching…';
  replaceChildren($('search-list'));
  try {
    const data = await api.search(q);
    const results = Array.isArray(data.results) ? data.results : [];
    status.textContent = results.length ? `${results.length} message${results.length === 1 ? '' : 's'} found` : `Nothing found for “${q}”.`;
    replaceChildren($('search-list'), results.map(result));
  } catch (err) {
    status.textContent =
      err instanceof ApiError && err.status === 404 && /no route/u.test(err.message)
        ? 'This server cannot search yet.'
        : `Search failed: ${err.message}`;
  }
}

export function setupSearch() {
  $('search-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const q = $('search-input').value.trim();
    if (q) run(q);
  });
  const close = () => {
    $('search-results').hidden = true;
    $('search-input').value = '';
  };
  $('search-close').addEventListener('click', close);
  $('search-input').addEventListener('keydown', (e) => {
    if (e.key === 'Escape') close();
  });
}
