// A viewer's cap on the video layer the server sends it (`video_cap` frame; README "Event
// protocol"). Two things cap it:
// - the data-saver toggle (watch page): the lowest layer, whatever the link allows; kept in
//   localStorage so the next show starts the way the viewer left it;
// - the player's displayed size: `max_height` is the picture's height on screen in device pixels,
//   and the server sends no layer taller than that (a layer a phone would only shrink is
//   bandwidth the viewer pays for and never sees).
//
// The frame goes when the room's channel opens (each `welcome`: a new session starts uncapped)
// and when the cap changes: the toggle at once; a size change after it has held still for
// DEBOUNCE_MS, and only when it moved by more than SIZE_STEP of the last one sent, so a resizing
// window or a phone's address bar sliding in and out sends one frame, not a stream of them.
export const STORE_KEY = 'sellcast.data-saver';
export const DEBOUNCE_MS = 1000;
export const SIZE_STEP = 0.10;
// The server's bound on `max_height` (8K's 4320 rows).
export const MAX_HEIGHT = 4320;

// The picture's displayed height in device pixels: the element's box, and inside it the picture
// as `object-fit` places it (`contain` letterboxes it, `cover` fills the box and crops). Before
// the first frame the picture's shape is unknown and the box is taken as it is. Null when the
// player is not laid out (hidden, zero-sized): no size cap then.
export function displayedHeight({ boxWidth, boxHeight, videoWidth, videoHeight, fit, dpr }) {
  if (!(boxWidth > 0) || !(boxHeight > 0)) return null;
  let height = boxHeight;
  if (videoWidth > 0 && videoHeight > 0 && (fit === 'contain' || fit === 'cover')) {
    const scaleW = boxWidth / videoWidth;
    const scaleH = boxHeight / videoHeight;
    height = videoHeight * (fit === 'contain' ? Math.min(scaleW, scaleH) : Math.max(scaleW, scaleH));
  }
  const device = Math.ceil(height * (dpr > 0 ? dpr : 1) - 1e-6);
  return Math.min(MAX_HEIGHT, Math.max(1, device));
}

// Whether a new displayed height is worth a frame: the first one, a change between capped and
// uncapped, or a move of more than SIZE_STEP from the one last sent.
export function sizeChanged(sent, next) {
  if (sent === undefined) return true;
  if (sent === null || next === null) return sent !== next;
  return Math.abs(next - sent) > SIZE_STEP * sent;
}

// The stored data-saver choice (false when unset, unreadable or storage is off).
export function storedDataSaver(storage) {
  try { return storage?.getItem(STORE_KEY) === 'on'; } catch { return false; }
}

export function storeDataSaver(storage, on) {
  try { storage?.setItem(STORE_KEY, on ? 'on' : 'off'); } catch { /* private mode: the toggle still works for this page */ }
}

// Binds one player: `video` is the <video>; `toggle` (optional) the data-saver checkbox;
// `send(frame)` writes on the room's channel and returns false when it is not open (the next
// `channelOpened` sends the cap then). `measure` and the timers are injectable for tests.
export class VideoCap {
  constructor({ video, toggle = null, send, storage = globalThis.localStorage, measure = null, debounceMs = DEBOUNCE_MS }) {
    Object.assign(this, { video, toggle, send, storage, debounceMs });
    this.measure = measure || (() => measureVideo(video));
    this.dataSaver = toggle ? storedDataSaver(storage) : false;
    this.sentHeight = undefined; // the max_height last sent on this channel (undefined: none yet)
    this.timer = null;
    if (toggle) {
      toggle.checked = this.dataSaver;
      toggle.addEventListener('change', () => this.setDataSaver(toggle.checked));
    }
  }

  // Watch the player's size (ResizeObserver on the element; the picture's own size changes with
  // the 'resize' event). Call once the element is in the page.
  observe() {
    if (typeof ResizeObserver === 'function') new ResizeObserver(() => this.sizeMaybeChanged()).observe(this.video);
    this.video.addEventListener('resize', () => this.sizeMaybeChanged());
  }

  // A new channel (a `welcome`): the server's session knows no cap yet.
  channelOpened() {
    clearTimeout(this.timer);
    this.timer = null;
    this.sentHeight = undefined;
    this.sendNow(this.measure());
  }

  setDataSaver(on) {
    this.dataSaver = Boolean(on);
    if (this.toggle) this.toggle.checked = this.dataSaver;
    storeDataSaver(this.storage, this.dataSaver);
    this.sendNow(this.sentHeight === undefined ? this.measure() : this.sentHeight);
  }

  // Debounced: the size that holds still for `debounceMs` is compared with the one sent.
  sizeMaybeChanged() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      const height = this.measure();
      if (sizeChanged(this.sentHeight, height)) this.sendNow(height);
    }, this.debounceMs);
  }

  sendNow(height) {
    const frame = { type: 'video_cap', data_saver: this.dataSaver, max_height: height ?? null };
    if (this.send(frame)) this.sentHeight = frame.max_height;
  }
}

function measureVideo(video) {
  const box = video.getBoundingClientRect();
  return displayedHeight({
    boxWidth: box.width,
    boxHeight: box.height,
    videoWidth: video.videoWidth,
    videoHeight: video.videoHeight,
    fit: getComputedStyle(video).objectFit,
    dpr: globalThis.devicePixelRatio,
  });
}
