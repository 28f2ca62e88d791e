// The host console's "Viewer preview": the watch page as a phone shows it, in a same-origin
// iframe (`/preview/{room}`, the one path this origin may frame), so the seller sees the cards,
// banners, chat and video that viewers see, muted like a viewer's first view.
//
// It is a real WHEP viewer (it shows what the server really sends), with its own guest name
// "Preview". The server counts it among the room's viewers; the console takes it back out of the
// figures it shows (`previewWatching`) while the preview's session is connected. The iframe is
// made on open and removed on close, which ends its session.
const $ = id => document.getElementById(id);
let frame = null;

// 1 while the preview's own WHEP session is connected (so counted by the server), else 0.
export function previewWatching() {
  try {
    return frame?.contentWindow?.sellcast?.session?.pc?.connectionState === 'connected' ? 1 : 0;
  } catch {
    return 0;
  }
}

function open(room) {
  if (!frame) {
    frame = document.createElement('iframe');
    frame.title = 'Viewer preview: the watch page as viewers see it';
    frame.allow = 'autoplay';
    frame.src = `/preview/${encodeURIComponent(room)}?name=Preview`;
    $('viewer-preview-frame').append(frame);
  }
  $('viewer-preview').hidden = false;
  document.body.dataset.preview = 'open';
  $('preview-open').setAttribute('aria-expanded', 'true');
  $('preview-close').focus();
}

function close() {
  frame?.remove();
  frame = null;
  $('viewer-preview').hidden = true;
  delete document.body.dataset.preview;
  $('preview-open').setAttribute('aria-expanded', 'false');
  $('preview-open').focus();
}

export function bindViewerPreview(room) {
  $('preview-open').addEventListener('click', () => (frame ? close() : open(room)));
  $('preview-close').addEventListener('click', close);
  $('viewer-preview').addEventListener('keydown', ev => { if (ev.key === 'Escape') close(); });
}
