// The live connection: `GET /events` (Server-Sent Events). When it drops, the page
// tries again at once and then with a capped back-off (250 ms, 500 ms, 1 s, then every
// 1.5 to 2 s, jittered so many pages do not knock at once), rather than EventSource's
// own slow retries, so it is live again within about 2 s of the server's return. Where EventSource cannot work at all (it keeps failing while plain
// requests succeed, e.g. a proxy that buffers), it polls every 3 s meanwhile.

import { api, ApiError } from './api.js';
import { state, changed } from './store.js';

const RETRY_MS = [250, 500, 1000, 2000];
const POLL_MS = 3000;
/** Failures in a row, with the server answering plain requests, before polling too. */
const POLL_AFTER = 4;
const TYPES = ['channel_message', 'direct_message', 'membership', 'presence', 'reset', 'message_edited', 'message_deleted', 'reaction', 'typing', 'read', 'mention', 'channel_updated'];

const live = { es: null, failures: 0, retryTimer: 0, pollTimer: 0, polling: false, everOpen: false, handlers: null };

function setConn(mode) {
  if (state.conn === mode) return;
  state.conn = mode;
  changed('conn');
}

/**
 * Start following the stream.
 * @param {{onEvent: (data: any) => void, onOpen: (afterGap: boolean) => void, poll: () => Promise<void>}} handlers
 */
export function startLive(handlers) {
  live.handlers = handlers;
  connect();
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden && !live.es) retryNow();
  });
  window.addEventListener('online', retryNow);
}

/** Try the stream again now (the network came back, the tab became visible). */
export function retryNow() {
  if (live.es && live.es.readyState !== EventSource.CLOSED) return;
  clearTimeout(live.retryTimer);
  connect();
}

export const isLive = () => state.conn === 'live';

function connect() {
  clearTimeout(live.retryTimer);
  if (!('EventSource' in window)) {
    startPolling();
    return;
  }
  const es = new EventSource('/events');
  live.es = es;
  if (!live.polling) setConn(live.everOpen ? 'reconnecting' : 'connecting');
  es.addEventListener('open', () => {
    if (live.es !== es) return;
    const afterGap = live.everOpen;
    live.everOpen = true;
    live.failures = 0;
    stopPolling();
    setConn('live');
    live.handlers.onOpen(afterGap);
  });
  const onMessage = (event) => {
    let data;
    try {
      data = JSON.parse(event.data);
    } catch {
      return;
    }
    if (data && !data.type) data.type = event.type;
    live.handlers.onEvent(data);
  };
  for (const type of TYPES) es.addEventListener(type, onMessage);
  es.addEventListener('message', onMessage);
  es.addEventListener('error', () => {
    if (live.es !== es) return;
    // Our own retries, not the browser's (which wait seconds and lose nothing we
    // need: a reconnect resynchronises what the page shows).
    es.close();
    live.es = null;
    const cap = RETRY_MS[Math.min(live.failures, RETRY_MS.length - 1)];
    const delay = Math.round(cap * (0.75 + Math.random() * 0.25));
    live.failures++;
    if (!live.polling) setConn('reconnecting');
    probe();
    live.retryTimer = setTimeout(connect, delay);
  });
}

/** After a failure: is the server there (then maybe poll) or not (offline)? A 401
 * sends the page to log in. */
async function probe() {
  try {
    await api.me();
    if (live.failures >= POLL_AFTER) startPolling();
  } catch (err) {
    if (err instanceof ApiError && err.status === 0 && !live.es) setConn('offline');
  }
}

function startPolling() {
  if (live.polling) return;
  live.polling = true;
  setConn('polling');
  const poll = async () => {
    if (!live.polling) return;
    try {
      await live.handlers.poll();
      if (live.polling) setConn('polling');
    } catch (err) {
      if (err instanceof ApiError && err.status === 0) setConn('offline');
    }
    if (live.polling) live.pollTimer = setTimeout(poll, POLL_MS);
  };
  live.pollTimer = setTimeout(poll, 0);
}

function stopPolling() {
  live.polling = false;
  clearTimeout(live.pollTimer);
}
