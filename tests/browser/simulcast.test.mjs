// The pages' simulcast modules under Node: the host page's encoding plan (web/simulcast.js),
// the viewer's video cap (web/video_cap.js: displayed size, 10 % step, debounce, data saver kept
// in storage, sent again on each new channel) and the console's "Viewers by quality" line
// (web/layer_counts.js).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodingPlan, simulcastAllowed, vp8First, addVideoTransceiver } from '../../web/simulcast.js';
import { VideoCap, displayedHeight, sizeChanged, STORE_KEY } from '../../web/video_cap.js';
import { layerSummary } from '../../web/layer_counts.js';

test('a 720p camera is sent as three layers q, h, f at 1/4, 1/2 and full size, full at 1.8 Mbit/s', () => {
  const plan = encodingPlan({ captured: { width: 1280, height: 720 }, choice: { short: 720 } });
  assert.deepEqual(plan.map(e => e.rid), ['q', 'h', 'f']);
  assert.deepEqual(plan.map(e => e.scaleResolutionDownBy ?? 1), [4, 2, 1]);
  assert.deepEqual(plan.map(e => e.maxBitrate), [150_000, 500_000, 1_800_000]);
  // Portrait is the same rule on the picture's short side.
  const portrait = encodingPlan({ captured: { width: 720, height: 1280 }, choice: { short: 720 } });
  assert.deepEqual(portrait, plan);
});

test("the full layer's bitrate follows the quality chosen, lowered to what the camera gives", () => {
  const full = (short, captured) => encodingPlan({ captured, choice: { short } })?.at(-1).maxBitrate;
  assert.equal(full(1080, { width: 1920, height: 1080 }), 2_500_000);
  assert.equal(full(540, { width: 960, height: 540 }), 1_000_000);
  assert.equal(full(1080, { width: 1280, height: 720 }), 1_800_000, 'a 720p camera asked for 1080p encodes 720p');
  assert.equal(full(720, { width: 1920, height: 1080 }), 1_800_000, 'a bigger camera is scaled to the choice');
});

test('one layer below 360 px, at the 360p choice, with another codec than VP8, or when the link turns it off', () => {
  const big = { width: 1280, height: 720 };
  assert.equal(encodingPlan({ captured: { width: 480, height: 270 }, choice: { short: 720 } }), null);
  assert.equal(encodingPlan({ captured: { width: 640, height: 360 }, choice: { short: 360 } }), null);
  assert.equal(encodingPlan({ captured: big, choice: { short: 720 }, codec: 'h264' }), null);
  assert.notEqual(encodingPlan({ captured: big, choice: { short: 720 }, codec: 'vp8' }), null);
  assert.equal(encodingPlan({ captured: big, choice: { short: 720 }, simulcast: simulcastAllowed('?simulcast=off') }), null);
  assert.equal(simulcastAllowed('?quality=720'), true);
  assert.equal(encodingPlan({ captured: {}, choice: { short: 720 } }), null, 'no known size: one layer');
  assert.notEqual(encodingPlan({ captured: { width: 640, height: 360 }, choice: { short: 540 } }), null, 'exactly 360 px is enough');
});

test('the simulcast transceiver puts VP8 first; one layer leaves the codecs alone', () => {
  const codecs = [{ mimeType: 'video/H264' }, { mimeType: 'video/VP9' }, { mimeType: 'video/VP8' }, { mimeType: 'video/rtx' }];
  assert.deepEqual(vp8First(codecs).map(c => c.mimeType), ['video/VP8', 'video/H264', 'video/VP9', 'video/rtx']);
  globalThis.RTCRtpSender = { getCapabilities: () => ({ codecs }) };
  const made = [];
  const pc = { addTransceiver: (track, init) => { const t = { init, prefs: null, setCodecPreferences(p) { this.prefs = p; } }; made.push(t); return t; } };
  const plan = encodingPlan({ captured: { width: 1280, height: 720 }, choice: { short: 720 } });
  addVideoTransceiver(pc, 'track', 'stream', plan);
  assert.deepEqual(made[0].init.sendEncodings.map(e => e.rid), ['q', 'h', 'f']);
  assert.equal(made[0].init.direction, 'sendonly');
  assert.equal(made[0].prefs[0].mimeType, 'video/VP8');
  addVideoTransceiver(pc, 'track', 'stream', null);
  assert.equal(made[1].init.sendEncodings, undefined);
  assert.equal(made[1].prefs, null);
  delete globalThis.RTCRtpSender;
});

test('the displayed height is the picture on screen in device pixels, as object-fit places it', () => {
  // 1280x720 letterboxed (contain) in a 400x800 box at DPR 2: 400 wide -> 225 tall -> 450.
  assert.equal(displayedHeight({ boxWidth: 400, boxHeight: 800, videoWidth: 1280, videoHeight: 720, fit: 'contain', dpr: 2 }), 450);
  // The same picture covering the box fills its height: 800 x 2.
  assert.equal(displayedHeight({ boxWidth: 400, boxHeight: 800, videoWidth: 1280, videoHeight: 720, fit: 'cover', dpr: 2 }), 1600);
  // Fractions round up; before the first frame the box counts; a phone at DPR 3 is capped at 4320.
  assert.equal(displayedHeight({ boxWidth: 390, boxHeight: 300.2, videoWidth: 0, videoHeight: 0, fit: 'cover', dpr: 1 }), 301);
  assert.equal(displayedHeight({ boxWidth: 390, boxHeight: 2000, videoWidth: 0, videoHeight: 0, fit: 'cover', dpr: 3 }), 4320);
  assert.equal(displayedHeight({ boxWidth: 0, boxHeight: 0, videoWidth: 720, videoHeight: 1280, fit: 'cover', dpr: 2 }), null, 'not laid out: no cap');
});

test('a size is sent again only when it moved by more than 10 %', () => {
  assert.equal(sizeChanged(undefined, 700), true, 'the first one');
  assert.equal(sizeChanged(700, 770), false);
  assert.equal(sizeChanged(700, 771), true);
  assert.equal(sizeChanged(700, 629), true);
  assert.equal(sizeChanged(700, null), true);
  assert.equal(sizeChanged(null, null), false);
});

function memoryStorage() {
  const m = new Map();
  return { getItem: k => (m.has(k) ? m.get(k) : null), setItem: (k, v) => m.set(k, String(v)), map: m };
}

function fakeToggle() {
  const listeners = [];
  return { checked: false, addEventListener: (_, f) => listeners.push(f), flip() { this.checked = !this.checked; listeners.forEach(f => f()); } };
}

test('the toggle sends data_saver at once, is kept in storage, and a new player starts from it', () => {
  const storage = memoryStorage();
  const sent = [];
  const toggle = fakeToggle();
  const cap = new VideoCap({ video: {}, toggle, send: f => { sent.push(f); return true; }, storage, measure: () => 720 });
  cap.channelOpened();
  assert.deepEqual(sent, [{ type: 'video_cap', data_saver: false, max_height: 720 }]);
  toggle.flip();
  assert.deepEqual(sent.at(-1), { type: 'video_cap', data_saver: true, max_height: 720 });
  assert.equal(storage.map.get(STORE_KEY), 'on');

  // A reload: the toggle comes back on, and the first frame on the channel says so.
  const again = fakeToggle();
  const sent2 = [];
  const cap2 = new VideoCap({ video: {}, toggle: again, send: f => { sent2.push(f); return true; }, storage, measure: () => 720 });
  assert.equal(again.checked, true);
  cap2.channelOpened();
  assert.deepEqual(sent2, [{ type: 'video_cap', data_saver: true, max_height: 720 }]);
});

test('size changes are debounced, filtered by the 10 % step, and everything is sent again on a new channel', async () => {
  let height = 700;
  let open = true;
  const sent = [];
  const cap = new VideoCap({ video: {}, send: f => (open ? (sent.push(f), true) : false), storage: null, measure: () => height, debounceMs: 20 });
  cap.channelOpened();
  assert.equal(sent.length, 1);
  // A burst of resizes ends at +5 %: nothing goes.
  for (const h of [900, 500, 735]) { height = h; cap.sizeMaybeChanged(); }
  await new Promise(r => setTimeout(r, 60));
  assert.equal(sent.length, 1, 'a 5 % move is not worth a frame');
  // A burst ending at 400: one frame, after the burst.
  for (const h of [600, 500, 400]) { height = h; cap.sizeMaybeChanged(); }
  assert.equal(sent.length, 1, 'nothing before the size holds still');
  await new Promise(r => setTimeout(r, 60));
  assert.deepEqual(sent.slice(1), [{ type: 'video_cap', data_saver: false, max_height: 400 }]);
  // The channel closed: the frame cannot go, and the next channel gets the cap at once.
  open = false;
  height = 1000;
  cap.sizeMaybeChanged();
  await new Promise(r => setTimeout(r, 60));
  open = true;
  cap.channelOpened();
  assert.deepEqual(sent.at(-1), { type: 'video_cap', data_saver: false, max_height: 1000 });
  assert.equal(sent.length, 3);
});

test("the console's layer line reads highest first with paused viewers, and says nothing for one layer", () => {
  const status = {
    layers: [
      { rid: 'q', viewers: 5, bitrate_bps: 150_000, height: 180 },
      { rid: 'h', viewers: 30, bitrate_bps: 500_000, height: 360 },
      { rid: 'f', viewers: 12, bitrate_bps: 1_800_000, height: 720 },
    ],
    paused_viewers: 2,
  };
  assert.equal(layerSummary(status, 16 / 9), 'Viewers by quality: 720p 12 · 360p 30 · 180p 5 · paused 2');
  // Portrait: the heights are the long side; the names stay the short side.
  const portrait = { layers: status.layers.map(l => ({ ...l, height: l.height * 16 / 9 })), paused_viewers: 0 };
  assert.equal(layerSummary(portrait, 9 / 16), 'Viewers by quality: 720p 12 · 360p 30 · 180p 5 · paused 0');
  assert.equal(layerSummary({ layers: [{ rid: null, viewers: 3, bitrate_bps: 1, height: 720 }], paused_viewers: 0 }), '');
  assert.equal(layerSummary({ viewers: 3 }), '', 'a server without layer counts');
  assert.equal(layerSummary({ layers: [{ rid: 'a', viewers: 1, height: null }, { rid: 'b', viewers: 0, height: null }] }), 'Viewers by quality: layer 2 0 · layer 1 1 · paused 0');
});
