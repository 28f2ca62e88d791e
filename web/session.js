// WHIP/WHEP session logic shared by the host and watch pages.
//
// A Session owns one RTCPeerConnection at a time. It creates the `sellcast` data channel before
// the offer (so the server sees it in the SDP), POSTs the offer, applies the answer, and when
// the connection fails it starts over with backoff. The server is ICE-lite and puts its own
// candidate in the answer, so there is no trickle and no waiting for ICE gathering.
// A draining server (restart, deploy) says when to come back: `moveAfter` from its `draining`
// frame, or `Retry-After` on a 503; the page waits that long plus up to as long again at random,
// so a full room does not reconnect in one instant.

// A token handed to the page (by the embedding site, or in a link a host sends) comes in the URL
// fragment, `#token=...`, which a browser never sends to a server. It is moved to sessionStorage
// (this tab only) and taken out of the address bar before anything else runs, and from then on
// travels only in `Authorization` headers. A `?token=` in the query is not used: the server and
// any proxy have already seen it in the request line; it is removed from the address bar too.
const givenKey = `sellcast.given-token.${location.pathname}`;
(function takeTokenFromUrl() {
  const hash = new URLSearchParams(location.hash.slice(1));
  const query = new URLSearchParams(location.search);
  if (!hash.has('token') && !query.has('token')) return;
  if (hash.get('token')) sessionStorage.setItem(givenKey, hash.get('token'));
  if (query.has('token')) console.warn('sellcast: a token in the query string is ignored; pass it as #token=... instead');
  hash.delete('token');
  query.delete('token');
  const q = query.toString();
  const h = hash.toString();
  history.replaceState(history.state, '', `${location.pathname}${q ? `?${q}` : ''}${h ? `#${h}` : ''}`);
})();

// The token this page was given in its URL, if any.
export function givenToken() {
  return sessionStorage.getItem(givenKey);
}

// The page's token: the one it was given (above), else (dev mode only) a guest token from the
// server, kept in localStorage. `fresh` skips the stored guest token: one that expired, or
// that a server with a new dev secret (its data directory was reset) refuses with 401.
export async function getToken(room, role, { fresh = false } = {}) {
  const given = sessionStorage.getItem(givenKey);
  if (given) return given;
  const params = new URLSearchParams(location.search);
  const name = params.get('name') || '';
  const storageKey = `sellcast.token.${room}.${role}.${name}`;
  const stored = localStorage.getItem(storageKey);
  const config = await fetch('/api/config').then(r => r.json()).catch(() => ({ dev_mode: false }));
  if (!config.dev_mode) return stored; // production: the embedding site provides the token
  if (stored && !fresh && !tokenExpired(stored)) return stored;
  const q = new URLSearchParams({ room, role, name });
  const r = await fetch(`/api/dev/token?${q}`);
  if (!r.ok) throw new Error(`token: ${r.status}`);
  const { token } = await r.json();
  localStorage.setItem(storageKey, token);
  return token;
}

function tokenExpired(token) {
  try {
    const claims = JSON.parse(atob(token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')));
    return claims.exp * 1000 < Date.now() + 60_000;
  } catch { return true; }
}

export function roomFromPath() {
  const parts = location.pathname.split('/').filter(Boolean);
  return decodeURIComponent(parts[parts.length - 1] || 'demo');
}

// The server's words for a refusal: the `message` of a JSON error body, else the text itself.
function reason(text) {
  try {
    const body = JSON.parse(text);
    if (typeof body?.message === 'string') return body.message;
  } catch { /* plain text */ }
  return text.trim();
}

// Cluster mode: the nodes a page may watch from, least loaded first (`GET
// /api/rooms/{room}/nodes`), as bases for URLs: '' is the page's own origin. The list is asked
// of each server in `from` in turn (the node the page was on may be the one that died); a
// node listed as '' is the server that answered (a single node lists only itself so). Returns
// `{ nodes, cluster }`, `nodes` empty when none answers; `cluster`: the list named nodes.
export async function fetchNodes(room, from) {
  for (const base of from) {
    try {
      const r = await fetch(`${base}/api/rooms/${encodeURIComponent(room)}/nodes`, { signal: AbortSignal.timeout(3000) });
      if (!r.ok) continue;
      const { nodes } = await r.json();
      if (!Array.isArray(nodes) || nodes.length === 0) continue;
      const named = n => typeof n?.url === 'string' && n.url !== '';
      return { nodes: nodes.map(n => sameOrigin(named(n) ? n.url : base)), cluster: nodes.some(named) };
    } catch { /* that server is not answering: ask the next */ }
  }
  return { nodes: [], cluster: false };
}

function sameOrigin(base) {
  try { return new URL(base, location.href).origin === location.origin ? '' : base.replace(/\/$/, ''); } catch { return base; }
}

export class Session {
  // endpoint: 'whip' | 'whep'; setup(pc) adds transceivers; onState(state, detail);
  // onChannel(channel) is called with each new data channel; renewToken() (optional) returns a
  // new token to try once when the server answers 401; query (optional, e.g. '?codec=h264') is
  // appended to the WHIP/WHEP URL; base (optional, e.g. 'https://live.example.com') is the
  // server's origin when the page is on another one (the embedded player), '' for this origin.
  // placement (optional, viewers): before each connection, fetch the room's node list
  // (`fetchNodes`) and connect to its first node, or after a failure to the first node other
  // than the one that failed; `this.base` is then the node the session is on, and the page's
  // API calls go there. In a cluster the offer carries `placed=1`: the page chose, the node
  // serves it (a single node gets the same offer as without placement).
  // follow (optional, the host): keep the room's node list (`refreshNodes`, while live) and,
  // when the page finds its node gone (`nodeGone`), publish again to the next node of that
  // list; `this.base` is then that node, and the page's API calls go there.
  constructor({ endpoint, room, token, setup, onState, onChannel, onTrack, renewToken, query = '', base = '', placement = false, follow = false }) {
    Object.assign(this, { endpoint, room, token, setup, onState, onChannel, onTrack, renewToken, query, base, placement, follow });
    this.home = base; // where the page came from: asked for the list when the current node is not answering
    this.known = [base]; // the last list, to ask when neither answers
    this.failedBase = null;
    this.clustered = false;
    this.renewed = false;
    this.pc = null;
    this.location = null;
    this.stopped = true;
    this.attempt = 0;
    this.timer = null;
    this.moveHint = null; // ms to wait before reconnecting once this connection ends
  }

  async start() {
    this.stopped = false;
    this.attempt = 0;
    await this.connect();
  }

  async connect() {
    clearTimeout(this.timer);
    this.closePc();
    if (this.stopped) return;
    this.onState?.(this.attempt === 0 ? 'connecting' : 'reconnecting');
    if (this.placement) {
      await this.choose();
      if (this.stopped) return;
    }
    const pc = new RTCPeerConnection({ iceServers: [] });
    this.pc = pc;
    const channel = pc.createDataChannel('sellcast', { ordered: true });
    // The draining server closes the session after its last answers: move then.
    channel.addEventListener('close', () => { if (pc === this.pc && this.moveHint !== null) this.retry('server moved'); });
    this.onChannel?.(channel);
    this.setup(pc);
    pc.ontrack = ev => this.onTrack?.(ev);
    pc.onconnectionstatechange = () => {
      if (pc !== this.pc) return;
      const s = pc.connectionState;
      if (s === 'connected') { this.attempt = 0; this.renewed = false; this.onState?.('live'); }
      if (s === 'failed' || s === 'disconnected' || s === 'closed') this.retry(`connection ${s}`);
    };
    try {
      await pc.setLocalDescription(await pc.createOffer());
      const query = this.clustered ? `${this.query}${this.query ? '&' : '?'}placed=1` : this.query;
      const resp = await fetch(`${this.base}/${this.endpoint}/${encodeURIComponent(this.room)}${query}`, {
        method: 'POST',
        headers: { 'content-type': 'application/sdp', ...(this.token ? { authorization: `Bearer ${this.token}` } : {}) },
        body: pc.localDescription.sdp,
      });
      const text = await resp.text();
      if (resp.status !== 201) {
        const err = new Error(reason(text) || `HTTP ${resp.status}`);
        err.status = resp.status;
        const after = Number(resp.headers.get('retry-after'));
        if (resp.status === 503 && after > 0) err.retryAfterMs = after * 1000;
        throw err;
      }
      const at = resp.headers.get('location');
      this.location = at && this.base ? new URL(at, this.base).href : at;
      if (pc !== this.pc) return;
      await pc.setRemoteDescription({ type: 'answer', sdp: text });
    } catch (e) {
      if (pc !== this.pc) return;
      if (e.status === 401 && this.renewToken && !this.renewed) {
        this.renewed = true; // once per successful connection: a refused fresh token is final
        const next = await this.renewToken().catch(() => null);
        if (pc !== this.pc) return;
        if (next && next !== this.token) {
          this.token = next;
          this.retry('token renewed');
          return;
        }
      }
      // 401/403/415/400 will not fix themselves; everything else is worth retrying.
      if ([400, 401, 403, 413, 415].includes(e.status)) {
        this.stopped = true;
        this.closePc();
        this.onState?.('error', e.message);
        return;
      }
      this.retry(e.message, e.retryAfterMs);
    }
  }

  // Pick the node for the next connection from a freshly fetched list: its first node, other
  // than the one whose connection just failed (when the list offers another).
  async choose() {
    const ask = [...new Set([this.base, this.home, ...this.known])].filter(b => b !== this.failedBase);
    const { nodes, cluster } = await fetchNodes(this.room, this.failedBase === null ? ask : [...ask, this.failedBase]);
    if (nodes.length === 0) return; // nobody answered: try the same node again (backoff)
    this.known = nodes;
    this.clustered = cluster;
    this.base = nodes.find(b => b !== this.failedBase) ?? nodes[0];
    this.failedBase = null;
  }

  // The page found the node it is on not answering HTTP: with placement, move now rather than
  // wait for the media connection to fail (a single node: the connection decides, as before).
  nodeNotAnswering() {
    if (this.placement && this.clustered && !this.stopped) this.retry('the node is not answering');
  }

  // The host (`follow`): the room's nodes, asked of the node it is on. Kept for when that node
  // dies: then it is the only one that could have said where else to go.
  async refreshNodes() {
    if (!this.follow) return;
    const { nodes, cluster } = await fetchNodes(this.room, [this.base]);
    if (cluster && nodes.length > 0) this.known = nodes;
  }

  // The host's node stopped answering (its WHIP session failed and its API is silent): publish
  // again, at once, to the next node of the last list, with the same camera stream (`setup`
  // adds the same tracks). That node takes the room over once the dead origin's lease lapses;
  // until then it answers 503 with Retry-After, which `connect` honours. False: no other node.
  nodeGone() {
    if (!this.follow || this.stopped) return false;
    const at = this.known.indexOf(this.base);
    const next = [...this.known.slice(at + 1), ...this.known.slice(0, Math.max(0, at))].find(b => b !== this.base);
    if (next === undefined) return false;
    clearTimeout(this.timer);
    this.timer = null;
    this.location = null; // its session died with the node: nobody to tell
    this.base = next;
    this.attempt = 0;
    this.retry(`publishing on ${next || location.origin}`, 0);
    return true;
  }

  // The server is draining: stay until it closes this connection (its last answers are still
  // coming), then reconnect after `ms` instead of the usual backoff.
  moveAfter(ms) {
    this.moveHint = Math.max(0, Number(ms) || 0);
    this.onState?.('moving', 'the server is restarting');
  }

  retry(why, afterMs) {
    if (this.stopped || this.timer) return;
    const hinted = afterMs ?? this.moveHint;
    this.moveHint = null;
    const delay = hinted != null ? hinted + Math.random() * hinted : Math.min(5000, 500 * 2 ** this.attempt);
    this.attempt += 1;
    if (this.placement) this.failedBase = this.base;
    this.onState?.('reconnecting', why);
    this.endRemote(true);
    this.timer = setTimeout(() => { this.timer = null; this.connect(); }, delay);
  }

  endRemote(keepalive = false) {
    if (!this.location) return;
    const url = this.location;
    this.location = null;
    fetch(url, { method: 'DELETE', keepalive, headers: this.token ? { authorization: `Bearer ${this.token}` } : {} }).catch(() => {});
  }

  closePc() {
    if (this.pc) {
      const pc = this.pc;
      this.pc = null;
      pc.onconnectionstatechange = null;
      pc.close();
    }
  }

  async stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = null;
    this.endRemote(true);
    this.closePc();
    this.onState?.('ended');
  }
}
