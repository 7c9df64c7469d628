// The message box (Enter sends, Shift+Enter adds a line, a draft kept per
// conversation in localStorage) and the broadcast dialog.

import { ApiError } from '../api.js';
import { charCount } from '../ui.js';
import { state } from '../store.js';

const MAX_MESSAGE_CHARS = 4000;
const $ = (id) => document.getElementById(id);

const draftKey = (kind, name) => `weaprous:${state.me}:draft:${kind === 'channel' ? 'c' : 'u'}:${name}`;

function saveDraft(kind, name, text) {
  try {
    if (text) localStorage.setItem(draftKey(kind, name), text);
    else localStorage.removeItem(draftKey(kind, name));
  } catch {
    /* private mode: drafts live as long as the page */
  }
}

function loadDraft(kind, name) {
  try {
    return localStorage.getItem(draftKey(kind, name)) || '';
  } catch {
    return '';
  }
}

/** The conversation the box's text belongs to, so a switch saves it under the right one. */
let owner = null;
/** Replying to or editing a message: {type: 'reply'|'edit', t, m, draft}. */
let mode = null;

function setMode(next) {
  const input = $('composer-input');
  if (mode && mode.type === 'edit' && !next) input.value = mode.draft; // the draft comes back
  mode = next;
  const box = $('composer-context');
  box.hidden = !mode;
  if (mode) {
    const excerpt = mode.m.text.replace(/\s+/g, ' ').slice(0, 80);
    $('composer-context-text').textContent =
      mode.type === 'reply' ? `Replying to ${mode.m.author === state.me ? 'yourself' : mode.m.author}: ${excerpt}` : 'Editing your message';
  }
  updateComposer();
}

/** Reply to `m` of thread `t`: the next message sent answers it. */
export function startReply(t, m) {
  setMode(null);
  setMode({ type: 'reply', t, m });
  $('composer-input').focus();
}

/** Edit `m`: its text goes into the box (the draft is kept aside meanwhile). */
export function startEdit(t, m) {
  setMode(null);
  const input = $('composer-input');
  setMode({ type: 'edit', t, m, draft: input.value });
  input.value = m.text;
  updateComposer();
  input.focus();
}

/** A conversation was opened: keep the old one's draft, show the new one's. */
export function composerOpened(kind, name) {
  setMode(null);
  const input = $('composer-input');
  if (owner) saveDraft(owner.kind, owner.name, input.value);
  owner = { kind, name };
  input.value = loadDraft(kind, name);
  input.placeholder = kind === 'channel' ? `Message #${name}` : `Message ${name}`;
  updateComposer();
}

export function composerClosed() {
  setMode(null);
  if (owner) saveDraft(owner.kind, owner.name, $('composer-input').value);
  owner = null;
}

/** A message the server refused goes back to its conversation's draft, not lost. */
export function restoreDraft(kind, name, text) {
  const input = $('composer-input');
  if (owner && owner.kind === kind && owner.name === name) {
    if (!input.value.includes(text)) input.value = input.value ? `${text}\n${input.value}` : text;
    saveDraft(kind, name, input.value);
    updateComposer();
  } else {
    const old = loadDraft(kind, name);
    if (!old.includes(text)) saveDraft(kind, name, old ? `${text}\n${old}` : text);
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

/**
 * @param {{send: (kind: string, name: string, text: string, replyTo?: any) => void, saveEdit: Function, error: Function, broadcast: (text: string) => Promise<any>, toast: (text: string) => void, narrow: () => boolean}} actions
 */
export function setupComposer(actions) {
  const input = $('composer-input');
  const submit = (event) => {
    if (event) event.preventDefault();
    if (!owner) return;
    const text = input.value.replace(/\s+$/u, '');
    if (!text.trim()) {
      input.focus();
      return;
    }
    const length = charCount(text);
    if (length > MAX_MESSAGE_CHARS) {
      actions.toast(`That message is ${length} characters long; the limit is ${MAX_MESSAGE_CHARS}.`);
      return;
    }
    if (mode && mode.type === 'edit') {
      const { t, m, draft } = mode;
      actions
        .saveEdit(t, m.id, text)
        .then(() => {
          mode = null;
          $('composer-context').hidden = true;
          input.value = draft;
          updateComposer();
        })
        .catch((err) => actions.error(err, 'Editing the message'));
      return;
    }
    // The outbox has it now (and keeps it until the server does): the box is free.
    actions.send(owner.kind, owner.name, text, mode && mode.type === 'reply' ? mode.m.id : undefined);
    mode = null;
    $('composer-context').hidden = true;
    input.value = '';
    saveDraft(owner.kind, owner.name, '');
    updateComposer();
    if (!actions.narrow() || document.activeElement === input) input.focus();
  };
  $('composer').addEventListener('submit', submit);
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) submit(e);
    else if (e.key === 'Escape' && mode) setMode(null);
  });
  input.addEventListener('input', () => {
    updateComposer();
    if (input.value.trim() && !(mode && mode.type === 'edit')) actions.typed();
    if (owner && !(mode && mode.type === 'edit')) saveDraft(owner.kind, owner.name, input.value);
  });
  $('composer-context-cancel').addEventListener('click', () => {
    setMode(null);
    input.focus();
  });
  setupBroadcast(actions);
}

function setupBroadcast(actions) {
  const dialog = $('broadcast-dialog');
  const close = () => {
    dialog.close();
    $('broadcast-open').focus();
  };
  $('broadcast-open').addEventListener('click', () => {
    const names = [...state.contacts.keys()].sort();
    const n = names.length;
    $('broadcast-info').textContent = n
      ? `A broadcast is one direct message to each of your contacts: ${names.join(', ')}. ` +
        'Your contacts are the people you have messaged from this page (and who added you).'
      : 'A broadcast is one direct message to each of your contacts, and you have none yet: ' +
        'anyone you press “Message” for becomes one.';
    $('broadcast-error').hidden = true;
    dialog.showModal();
    $('broadcast-input').focus();
  });
  $('broadcast-cancel').addEventListener('click', close);
  const send = async (event) => {
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
    const button = $('broadcast-send');
    button.disabled = true;
    try {
      await actions.broadcast(text);
      input.value = '';
      close();
    } catch (err) {
      fail(err instanceof ApiError ? err.message : 'Could not send the broadcast.');
    } finally {
      button.disabled = false;
    }
  };
  $('broadcast-form').addEventListener('submit', send);
  $('broadcast-input').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) send(e);
  });
}
