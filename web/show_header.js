// The show as a viewer sees it around the video: a header with the host's avatar, name and the
// show's title, and the pre-show page (title and "Starts in 4:32") while the host is not live yet.
//
// The show's details come in the snapshot and in `show_updated` events; before the room's data
// channel opens, the page reads them once from the public `GET /api/rooms/{room}/show`.
// Everything is written as text nodes or attributes (never HTML); the avatar is an https: URL or a
// path on this server (the server checks; the page's CSP allows only those too).

const $ = id => document.getElementById(id);

// "4:32", "1:02:03": what is left until the start, in whole seconds rounded up.
export function untilText(ms) {
  const s = Math.max(0, Math.ceil(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
}

export class ShowHeader {
  // serverNow(): the server's clock as the page knows it (ms).
  constructor({ room, serverNow, base = '' }) {
    Object.assign(this, { room, serverNow, base });
    this.show = null;
  }

  // Read the show's details once over HTTP (the room's stream may not be open yet).
  async load() {
    const r = await fetch(`${this.base}/api/rooms/${encodeURIComponent(this.room)}/show`).catch(() => null);
    const show = r?.ok ? await r.json().catch(() => null) : null;
    if (show && !this.show) this.apply(show);
  }

  apply(show) {
    if (!show || typeof show !== 'object') return;
    this.show = show;
    const name = show.host_name || '';
    if (name) { $('host-name').textContent = name; $('host-name').hidden = false; }
    $('show-title').textContent = show.title || '';
    $('show-title').hidden = !show.title;
    const avatar = $('host-avatar');
    if (show.avatar_url) {
      if (avatar.getAttribute('src') !== show.avatar_url) avatar.src = show.avatar_url;
      avatar.alt = name ? `${name}'s picture` : 'The host';
      avatar.hidden = false;
    } else {
      avatar.removeAttribute('src');
      avatar.hidden = true;
    }
  }

  // The host pressed End (and has not set the show up again since).
  ended() {
    return Boolean(this.show?.ended_at_ms);
  }

  // While the host is not live: the overlay's text for a scheduled show ("Starts in 4:32", or
  // "Starting soon…" once the time has come), else null. Also fills the pre-show block.
  waitingText() {
    const show = this.show;
    const pre = $('preshow');
    const scheduled = Boolean(show?.starts_at_ms) && !show.ended_at_ms;
    pre.hidden = !(scheduled || show?.title);
    if (!pre.hidden) {
      $('preshow-title').textContent = show.title || '';
      $('preshow-title').hidden = !show.title;
      $('preshow-host').textContent = show.host_name ? `with ${show.host_name}` : '';
    }
    if (!scheduled) return null;
    const left = show.starts_at_ms - this.serverNow();
    return left > 0 ? `Starts in ${untilText(left)}` : 'Starting soon…';
  }

  // The pre-show block is part of the waiting overlay: hidden with it, and when not waiting.
  hidePreShow() {
    $('preshow').hidden = true;
  }
}
