// The viewer's display name: "You: Guest 3123 ✎" under the chat, and a small dialog to change
// it. The server checks the name (1-40 characters, no control characters, none of the room's
// blocked words), keeps it for this identity in this room, and stamps it on the viewer's chat
// lines and orders from then on; it answers the viewer's sessions with `name_set` (a refusal is
// an `error` frame, which the page shows like any other).

const $ = id => document.getElementById(id);

export class NamePrompt {
  // send(frame): resolves true once the frame was handed to the room.
  constructor({ send }) {
    this.send = send;
    this.me = null;
    $('my-name').addEventListener('click', () => this.open());
    $('name-form').addEventListener('submit', ev => { ev.preventDefault(); this.save(); });
    $('name-cancel').addEventListener('click', () => $('name-dialog').close());
  }

  // Who the room says this viewer is (the welcome, or `name_set`).
  setMe(me) {
    this.me = me;
    $('my-name-text').textContent = me?.name || '';
    $('my-name').hidden = !me;
  }

  open() {
    $('name-input').value = this.me?.name || '';
    $('name-error').textContent = '';
    $('name-dialog').showModal();
    $('name-input').focus();
  }

  async save() {
    const name = $('name-input').value.trim();
    if (!name) { $('name-error').textContent = 'Type a name first.'; return; }
    if (name === this.me?.name) { $('name-dialog').close(); return; }
    if (!(await this.send({ type: 'set_name', name }))) {
      $('name-error').textContent = 'Offline: try again once reconnected.';
      return;
    }
    $('name-dialog').close();
  }
}
