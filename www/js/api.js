// The peer's HTTP API (see the README's "API" section). Every call sends and expects
// JSON-friendly bodies; a 401 anywhere means the session is gone, so we go to /login.

/** An error reply (`{"status":"error","message":...}`) or a network failure. */
export class ApiError extends Error {
  constructor(status, message, body = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status; // 0 for a network failure
    this.body = body;
  }
}

let redirecting = false;

/** Leave for the log-in page (once, even if many calls fail together). */
export function goToLogin() {
  if (redirecting) return;
  redirecting = true;
  window.location.assign('/login');
}

/**
 * Call the API.
 * @param {string} method
 * @param {string} path
 * @param {{form?: Record<string, unknown>, json?: unknown, query?: Record<string, unknown>, signal?: AbortSignal}} [options]
 */
export async function request(method, path, { form, json, query, signal } = {}) {
  let url = path;
  if (query) {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) {
      if (value !== undefined && value !== null && value !== '') params.set(key, String(value));
    }
    const qs = params.toString();
    if (qs) url += (url.includes('?') ? '&' : '?') + qs;
  }
  const headers = { Accept: 'application/json' };
  let body;
  if (form) {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(form)) {
      if (value !== undefined && value !== null) params.set(key, String(value));
    }
    headers['Content-Type'] = 'application/x-www-form-urlencoded;charset=UTF-8';
    body = params;
  } else if (json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(json);
  }

  let response;
  try {
    response = await fetch(url, { method, headers, body, credentials: 'same-origin', signal, cache: 'no-store' });
  } catch (err) {
    if (err && err.name === 'AbortError') throw err;
    throw new ApiError(0, 'Cannot reach the server. Check your connection.');
  }

  let data = null;
  const text = await response.text().catch(() => '');
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }

  if (response.status === 401) {
    goToLogin();
    throw new ApiError(401, (data && data.message) || 'Your session has ended. Please log in again.', data);
  }
  if (!response.ok) {
    const message = (data && typeof data.message === 'string' && data.message) || `${response.status} ${response.statusText || 'error'}`;
    throw new ApiError(response.status, message, data);
  }
  return { status: response.status, data };
}

const get = (path, query) => request('GET', path, { query }).then((r) => r.data);
const post = (path, form) => request('POST', path, { form }).then((r) => r.data);

/** The calls the chat page makes, one per route. */
export const api = {
  me: () => get('/me'),
  logout: () => post('/logout', {}),

  users: () => get('/get-list'),
  contacts: () => get('/get-connected-peers'),
  connect: (username) => post('/connect-peer', { username }),

  allChannels: () => get('/get-all-channels'),
  joinedChannels: () => get('/get-joined-channels'),
  createChannel: (name, isPrivate = false) => post('/create-channel', { channel_name: name, private: isPrivate }),
  invite: (name, username) => post('/invite', { channel_name: name, username }),
  joinChannel: (name) => post('/join-channel', { channel_name: name }),
  leaveChannel: (name) => post('/leave-channel', { channel_name: name }),
  channelMessages: (name, { before, after, limit } = {}) =>
    post('/get-channel-messages', { channel_name: name, before, after, limit }),
  sendChannel: (name, message, replyTo) => post('/send-channel-message', { channel_name: name, message, reply_to: replyTo }),
  /** Edit, delete, react: `channel` for a channel message, none for a direct one. */
  editMessage: (id, channel, message) => post('/edit-message', { id, channel_name: channel, message }),
  deleteMessage: (id, channel) => post('/delete-message', { id, channel_name: channel }),
  /** Messages holding every word of `q`: `{results: [{kind, channel?, with?, id, username, ts, snippet}]}`. */
  search: (q, limit = 30) => post('/search', { q, limit }),
  /** "I am typing": `to` a user, or in `channel`. */
  typing: (to, channel) => post('/typing', { to, channel_name: channel }),
  react: (id, channel, emoji, on) => post('/react', { id, channel_name: channel, emoji, on }),

  conversation: (withName, { before, limit } = {}) => get('/get-conversation', { with: withName, before, limit }),
  /** Every direct conversation, newest first: `{status, conversations: [{with, last, unread}]}`. */
  conversations: () => get('/get-conversations'),
  /** Received direct messages not yet marked read (read-only). */
  received: () => get('/get-received-messages'),
  /** Marks received direct messages read, up to the one at `upTo` (a `seq`). */
  markRead: (upTo, withName) => post('/mark-read', { up_to: upTo, with: withName }),
  setTopic: (name, topic) => post('/set-topic', { channel_name: name, topic }),
  markChannelRead: (name, upTo) => post('/mark-read', { channel_name: name, up_to: upTo }),
  /** Resolves to `{status, data}`: 200 delivered, 202 queued. */
  sendPeer: (username, message, replyTo) => request('POST', '/send-peer', { form: { username, message, reply_to: replyTo } }),
  broadcast: (message) => request('POST', '/broadcast-peer', { json: { message } }).then((r) => r.data),
};
