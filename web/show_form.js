// The host console's Show form: the show's title, its scheduled start and the host's avatar,
// and (in the panel above it) the host's display name. Usable before going live: each goes to
// the room as a frame (`set_show`, `set_name`), on the data channel when live and over the
// frames API otherwise; the server checks them (title at most 100 characters, avatar an https:
// URL or a path on this server, a start within the next year, a name of 1-40 characters without
// blocked words) and answers a refusal with an `error` frame, which the console shows.

const $ = id => document.getElementById(id);

// A time as a datetime-local input holds it (the browser's time zone, to the minute).
function toLocalInput(ms) {
  const d = new Date(ms);
  const pad = n => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

export class ShowForm {
  // send(frame): resolves true when the room took it; onName(name): the host's name changed.
  constructor({ send, onName }) {
    Object.assign(this, { send, onName });
    $('show-form').addEventListener('submit', ev => { ev.preventDefault(); this.saveShow(); });
    $('name-form').addEventListener('submit', ev => { ev.preventDefault(); this.saveName(); });
  }

  // The room's show: shown in the form unless the host is editing it right now.
  fill(show) {
    if (!show || $('show-form').contains(document.activeElement)) return;
    $('show-title-input').value = show.title || '';
    $('show-start').value = show.starts_at_ms ? toLocalInput(show.starts_at_ms) : '';
    $('show-avatar').value = show.avatar_url || '';
    $('show-saved').textContent = show.ended_at_ms ? 'Show ended: save the show to announce the next one.' : '';
  }

  async saveShow() {
    const start = $('show-start').value;
    const startsAt = start ? new Date(start).getTime() : null;
    if (start && !Number.isFinite(startsAt)) { $('show-saved').textContent = 'The start time is not a valid date.'; return; }
    const frame = { type: 'set_show', title: $('show-title-input').value.trim(), starts_at_ms: startsAt, avatar_url: $('show-avatar').value.trim() };
    if (await this.send(frame)) $('show-saved').textContent = 'Saved: viewers see it now.';
  }

  async saveName() {
    const name = $('host-name').value.trim();
    if (!name) return;
    if (await this.send({ type: 'set_name', name })) {
      this.onName(name);
      $('message').textContent = `you appear as ${name}`;
    }
  }
}
