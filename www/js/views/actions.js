// What a message offers besides its text: the message it replies to (a button that
// jumps there), "edited", a tombstone once deleted, its reactions (toggle buttons),
// and tools: reply, react, and for its author edit and delete.

import { api } from '../api.js';
import { el } from '../ui.js';
import { state, changed, currentThread, updateMessage } from '../store.js';

/** The emoji offered by "React" (any emoji arriving from others shows too). */
export const QUICK_EMOJI = ['👍', '❤️', '😂', '🎉', '😮', '🙏'];

/** Set by app.js: start replying to / editing a message in the composer, report errors. */
export const hooks = { reply: () => {}, edit: () => {}, error: () => {}, loadOlder: async () => {} };

const channelOf = (t) => (t.kind === 'channel' ? t.name : undefined);

/** The quoted parent above a reply: a button that goes to it. */
export function replyQuote(t, m) {
  if (m.replyTo === undefined) return null;
  const r = m.reply || { author: '', text: '', deleted: false };
  const excerpt = r.deleted ? 'deleted message' : r.text.replace(/\s+/g, ' ').slice(0, 120);
  return el(
    'button',
    {
      type: 'button',
      class: 'msg-reply',
      'data-testid': 'reply-quote',
      'data-parent': String(m.replyTo),
      'aria-label': `Replying to ${r.author || 'a message'}: ${excerpt}. Go to it`,
      onclick: () => jumpTo(t, m.replyTo),
    },
    el('span', { class: 'msg-reply-author' }, r.author || '…'),
    el('span', { class: 'msg-reply-text', dir: 'auto' }, excerpt),
  );
}

/** Scroll to a message (loading older pages if needed) and point it out. */
export async function jumpTo(t, id) {
  for (let page = 0; page < 10 && !t.byId.has(id) && t.hasMore; page++) await hooks.loadOlder();
  const li = document.querySelector(`#message-list li[data-id="${CSS.escape(String(id))}"]`);
  if (!li) {
    hooks.error(new Error('That message is no longer in this conversation'), 'Reply');
    return;
  }
  li.scrollIntoView({ block: 'center' });
  li.classList.remove('flash');
  void li.offsetWidth; // restart the highlight
  li.classList.add('flash');
  li.setAttribute('tabindex', '-1');
  li.focus({ preventScroll: true });
}

export function reactionsRow(t, m) {
  if (!m.reactions || !m.reactions.length || m.deleted) return null;
  return el(
    'div',
    { class: 'reactions', 'data-testid': 'reactions' },
    m.reactions.map((r) => {
      const mine = r.users.includes(state.me);
      const who = r.users.map((u) => (u === state.me ? 'you' : u)).join(', ');
      return el(
        'button',
        {
          type: 'button',
          class: `reaction${mine ? ' mine' : ''}`,
          'aria-pressed': String(mine),
          'aria-label': `${r.emoji} ${r.users.length}: ${who}`,
          title: who,
          'data-testid': 'reaction',
          'data-emoji': r.emoji,
          onclick: () => react(t, m, r.emoji, !mine),
        },
        el('span', { 'aria-hidden': 'true' }, `${r.emoji} ${r.users.length}`),
      );
    }),
  );
}

async function react(t, m, emoji, on) {
  try {
    const data = await api.react(m.id, channelOf(t), emoji, on);
    if (updateMessage(t, m.id, { reactions: data.reactions || [] })) changed('thread');
  } catch (err) {
    hooks.error(err, 'Reaction');
  }
}

async function remove(t, m) {
  if (!window.confirm('Delete this message? Everyone will see that a message was deleted.')) return;
  try {
    await api.deleteMessage(m.id, channelOf(t));
    if (updateMessage(t, m.id, { deleted: true, reactions: [] })) changed('thread');
  } catch (err) {
    hooks.error(err, 'Deleting the message');
  }
}

/** Save an edit (from the composer). */
export async function saveEdit(t, id, text) {
  const data = await api.editMessage(id, channelOf(t), text);
  if (updateMessage(t, id, { text, editedAt: Number(data.edited_at) || Date.now() })) changed('thread');
}

/** The tools of one message, shown on hover and keyboard focus. */
export function messageTools(t, m) {
  if (m.pending || m.deleted || typeof m.id === 'string' && m.id.startsWith('local:')) return null;
  const mine = m.author === state.me;
  const palette = el(
    'div',
    { class: 'react-palette', hidden: true, role: 'group', 'aria-label': 'Pick a reaction' },
    QUICK_EMOJI.map((emoji) =>
      el(
        'button',
        {
          type: 'button',
          class: 'icon-btn small',
          'aria-label': `React with ${emoji}`,
          'data-testid': 'react-with',
          'data-emoji': emoji,
          onclick: () => {
            palette.hidden = true;
            const r = (m.reactions || []).find((x) => x.emoji === emoji);
            react(t, m, emoji, !(r && r.users.includes(state.me)));
          },
        },
        emoji,
      ),
    ),
  );
  const tool = (label, testid, onclick) => el('button', { type: 'button', class: 'msg-tool', 'data-testid': testid, onclick }, label);
  return el(
    'div',
    { class: 'msg-tools' },
    tool('Reply', 'reply', () => hooks.reply(t, m)),
    el(
      'button',
      {
        type: 'button',
        class: 'msg-tool',
        'data-testid': 'react',
        'aria-expanded': 'false',
        onclick: (e) => {
          palette.hidden = !palette.hidden;
          e.currentTarget.setAttribute('aria-expanded', String(!palette.hidden));
        },
      },
      'React',
    ),
    mine ? tool('Edit', 'edit', () => hooks.edit(t, m)) : null,
    mine ? tool('Delete', 'delete', () => remove(t, m)) : null,
    palette,
  );
}

// === Events ===

function threadOf(ev) {
  const key = ev.channel ? `c:${ev.channel}` : ev.with ? `u:${ev.with}` : null;
  return key ? state.threads.get(key) : null;
}

/** `message_edited`, `message_deleted`, `reaction`. */
export function onChange(ev) {
  const t = threadOf(ev);
  if (!t) return;
  const id = t.kind === 'channel' ? Number(ev.id) : String(ev.id);
  let done = false;
  if (ev.type === 'message_edited') done = updateMessage(t, id, { text: ev.message, editedAt: Number(ev.edited_at) || Date.now() });
  else if (ev.type === 'message_deleted') done = updateMessage(t, id, { deleted: true, reactions: [] });
  else if (ev.type === 'reaction') done = updateMessage(t, id, { reactions: ev.reactions || [] });
  if (done && currentThread() === t) changed('thread');
}
