// "Ana and 12 others joined", "Bo just bought Glow serum": the server coalesces joins and orders
// into at most one `activity` frame every 3 s for the whole room (a frame per join to every
// viewer would be n^2 frames as a room fills), so each frame is shown as it comes, for a little
// less than the interval. The viewer's own join and own order are not announced to them.

const SHOW_MS = 2500;

function someone(part, me, verb) {
  if (!part) return '';
  const mine = me && part.first.id === me.id;
  const others = part.others;
  if (mine) return others === 0 ? '' : `${others} ${others === 1 ? 'other' : 'others'} ${verb}`;
  if (others === 0) return `${part.first.name} ${verb}`;
  return `${part.first.name} and ${others} ${others === 1 ? 'other' : 'others'} ${verb}`;
}

// The banner's text for an activity frame as `me` sees it ('' when there is nothing to say).
export function activityText(frame, me) {
  const bought = frame.bought ? someone(frame.bought, me, `just bought ${frame.bought.title || 'this deal'}`) : '';
  const joined = someone(frame.joined, me, 'joined');
  return [bought && `🛍 ${bought}`, joined && `👋 ${joined}`].filter(Boolean).join(' · ');
}

export class ActivityBanner {
  constructor(node) {
    this.node = node;
    this.timer = null;
  }

  show(frame, me) {
    const text = activityText(frame, me);
    if (!text) return;
    this.node.textContent = text;
    this.node.hidden = false;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => { this.node.hidden = true; }, SHOW_MS);
  }
}
