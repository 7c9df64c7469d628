// Messages on their way: every send goes through this queue, one at a time and in the
// order written, and stays in it (and in sessionStorage, so a reload of this tab keeps
// it, while another tab of the same user never sends it too) until the server has it. A send that fails because the server could not be reached waits and
// goes again when the connection is back. Before going again it checks the
// conversation's latest history for the message (same author, same text, written
// after it was queued and not matched to an earlier entry): a request whose answer was
// lost may still have been stored, and each message must arrive once.

import { api, ApiError } from './api.js';
import { state, changed, thread, addMessages, removeMessage, fromChannel, fromDirect, notify } from './store.js';

const RETRY_MS = [1000, 2000, 4000, 8000, 15000];
/** How far the server's clock may be behind ours when matching a lost send. */
const SKEW_MS = 30_000;

/** @type {{cid: string, kind: 'channel'|'dm', name: string, text: string, queuedAt: number, after: number, tries: number, state: string, unsure: boolean}[]} */
let queue = [];
let running = false;
let retryTimer = 0;
/** Server ids already matched to an entry, so two equal messages stay two. */
const claimed = new Set();
let onFailed = () => {};

const storeKey = () => `weaprous:${state.me}:outbox`;

function save() {
  try {
    const rest = queue.map(({ cid, kind, name, text, queuedAt, after, tries, unsure, replyTo }) => ({ cid, kind, name, text, queuedAt, after, tries, unsure, replyTo }));
    if (rest.length) sessionStorage.setItem(storeKey(), JSON.stringify(rest));
    else sessionStorage.removeItem(storeKey());
  } catch {
    /* private mode: the queue lives as long as the page */
  }
}

const localId = (entry) => `local:${entry.cid}`;

function echo(entry) {
  const t = thread(entry.kind, entry.name);
  const id = localId(entry);
  const existing = t.byId.get(id);
  if (existing) existing.pending = entry.state;
  else addMessages(t, [{ id, author: state.me, to: entry.name, text: entry.text, ts: entry.queuedAt, local: true, pending: entry.state, ...replyFields(entry) }]);
  changed('thread', entry.kind === 'channel' ? 'channels' : 'dms');
}

/** Restore what a previous page left unsent. `failed(kind, name, text)` gets a message
 * the server refused (it goes back to that conversation's draft). */
export function startOutbox(failed) {
  onFailed = failed;
  try {
    queue = JSON.parse(sessionStorage.getItem(storeKey()) || '[]').map((e) => ({ ...e, state: 'waiting' }));
  } catch {
    queue = [];
  }
  for (const entry of queue) echo(entry);
  pump();
}

/** Queue `text` for the open conversation `kind`/`name`. */
export function enqueue(kind, name, text, replyTo) {
  const t = thread(kind, name);
  const newest = t.list.filter((m) => !m.pending).at(-1);
  const entry = {
    cid: crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random()}`,
    kind,
    name,
    text,
    queuedAt: Date.now(),
    after: kind === 'channel' && newest ? Number(newest.id) : 0,
    tries: 0,
    replyTo,
    state: queue.length ? 'waiting' : 'sending',
    unsure: false,
  };
  queue.push(entry);
  save();
  echo(entry);
  pump();
}

/** The connection is back: send what waits now. */
export function kick() {
  if (!queue.length || running) return;
  clearTimeout(retryTimer);
  pump();
}

export const pendingCount = () => queue.length;

const retryable = (err) => err instanceof ApiError && (err.status === 0 || err.status === 502 || err.status === 503 || err.status === 504 || err.status === 429);

async function pump() {
  if (running) return;
  running = true;
  clearTimeout(retryTimer);
  try {
    while (queue.length) {
      const entry = queue[0];
      entry.state = 'sending';
      echo(entry);
      try {
        const found = entry.unsure ? await findStored(entry) : null;
        if (found) landed(entry, found);
        else landed(entry, await sendOne(entry));
      } catch (err) {
        if (retryable(err)) {
          entry.unsure = true;
          entry.tries++;
          save();
          for (const waiting of queue) {
            waiting.state = 'waiting';
            echo(waiting);
          }
          retryTimer = setTimeout(pump, RETRY_MS[Math.min(entry.tries - 1, RETRY_MS.length - 1)]);
          return;
        }
        refused(entry, err);
      }
    }
  } finally {
    running = false;
  }
}

async function sendOne(entry) {
  if (entry.kind === 'channel') {
    const data = await api.sendChannel(entry.name, entry.text, entry.replyTo);
    return fromChannel({ id: data.id, username: state.me, text: entry.text, ts: Number(data.ts) || Date.now(), channel: entry.name, ...replyOf(entry) });
  }
  const { data } = await api.sendPeer(entry.name, entry.text, entry.replyTo);
  const id = String(data.id);
  if (state.delivery.get(id) !== 'delivered') state.delivery.set(id, data.delivered === false ? 'queued' : 'delivered');
  if (data.delivered === false) notify(`${entry.name} is not reachable now; your message is stored and will be delivered later.`);
  return { id, author: state.me, to: entry.name, text: entry.text, ts: Date.now(), broadcast: false, local: true, ...replyFields(entry) };
}

/** The reply fields of a message just sent, from the parent the page holds. */
function replyOf(entry) {
  if (entry.replyTo === undefined || entry.replyTo === null) return {};
  const parent = thread(entry.kind, entry.name).byId.get(entry.replyTo);
  return { reply_to: entry.replyTo, reply: parent ? { id: parent.id, username: parent.author, text: parent.text.slice(0, 200), deleted: !!parent.deleted } : undefined };
}

function replyFields(entry) {
  const raw = replyOf(entry);
  if (!raw.reply_to) return {};
  const reply = raw.reply ? { id: raw.reply.id, author: raw.reply.username, text: raw.reply.text, deleted: raw.reply.deleted } : undefined;
  return { replyTo: raw.reply_to, reply };
}

/** The message, if a send whose answer was lost stored it after all. */
async function findStored(entry) {
  let messages;
  if (entry.kind === 'channel') {
    const data = await api.channelMessages(entry.name, { limit: 50 });
    messages = ((data.messages || {}).messages || []).map(fromChannel).filter((m) => m.id > entry.after);
  } else {
    const data = await api.conversation(entry.name, { limit: 50 });
    messages = (data.messages || []).map(fromDirect);
  }
  return (
    messages.find(
      (m) => m.author === state.me && m.text === entry.text && m.ts >= entry.queuedAt - SKEW_MS && !claimed.has(String(m.id)),
    ) || null
  );
}

function landed(entry, message) {
  queue.shift();
  save();
  claimed.add(String(message.id));
  const t = thread(entry.kind, entry.name);
  removeMessage(t, localId(entry));
  addMessages(t, [message]);
  changed('thread', 'grew', entry.kind === 'channel' ? 'channels' : 'dms');
}

function refused(entry, err) {
  queue.shift();
  save();
  removeMessage(thread(entry.kind, entry.name), localId(entry));
  changed('thread', entry.kind === 'channel' ? 'channels' : 'dms');
  onFailed(entry.kind, entry.name, entry.text, err);
}
