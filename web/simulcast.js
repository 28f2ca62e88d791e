// How the host page encodes its camera: three simulcast layers when the picture is big enough,
// else one. The server forwards each viewer the layer its link and its player can take (it ranks
// layers by measured bitrate, not by rid), so a viewer on a slow phone link gets the quarter
// layer instead of freezing on the full one.
//
// Layers, by rid: `q` quarter size (~150 kbit/s), `h` half size (~500 kbit/s), `f` full size,
// at a bitrate by the chosen quality (1080p 2.5 Mbit/s, 720p 1.8 Mbit/s, 540p 1 Mbit/s). The
// quality is the smaller of the host's choice and what the camera really gives (a 720p camera
// asked for 1080p encodes 720p).
//
// One layer, as before simulcast, when:
// - the picture's short side is under 360 px: its quarter layer would be under 90 px;
// - the host chose 360p: the quarter layer would be 90 px and the half one a 180 px picture a
//   phone hardly needs; 360p is already the low-bandwidth choice;
// - the link asks for another codec than VP8 (`?codec=h264`): the server's simulcast handling is
//   VP8's (layer switches at VP8 keyframes, with VP8 picture ids rewritten);
// - the link says `?simulcast=off` (a host who wants one stream, or to compare).
export const MIN_SHORT_SIDE = 360;
export const QUARTER = { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150_000 };
export const HALF = { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500_000 };
export const FULL_BITRATE = { 1080: 2_500_000, 720: 1_800_000, 540: 1_000_000 };

// The full layer's quality: the chosen short side, lowered to what the camera captures.
function fullQuality(chosenShort, capturedShort) {
  const short = Math.min(chosenShort, capturedShort);
  if (short >= 1080) return 1080;
  if (short >= 720) return 720;
  return 540;
}

// The encodings for the video transceiver, or null for one layer (the browser's defaults).
// `captured` is the camera track's settings ({ width, height }); `choice` the page's
// ({ short }); `codec` the codec the link asks for (null: the browser's default, VP8 first);
// `simulcast` false when the link turned it off.
export function encodingPlan({ captured, choice, codec = null, simulcast = true }) {
  const capturedShort = Math.min(captured?.width || 0, captured?.height || 0);
  if (!simulcast || (codec && codec !== 'vp8')) return null;
  if (capturedShort < MIN_SHORT_SIDE || choice.short <= 360) return null;
  const full = { rid: 'f', maxBitrate: FULL_BITRATE[fullQuality(choice.short, capturedShort)] };
  return [{ ...QUARTER }, { ...HALF }, full];
}

// The link's `?simulcast=off` (anything else, or nothing, leaves it on).
export function simulcastAllowed(search) {
  return new URLSearchParams(search).get('simulcast')?.toLowerCase() !== 'off';
}

// VP8 first in the transceiver's codec list (the rest stay as fallbacks, in the browser's order).
export function vp8First(codecs) {
  const vp8 = codecs.filter(c => c.mimeType.toLowerCase() === 'video/vp8');
  return [...vp8, ...codecs.filter(c => c.mimeType.toLowerCase() !== 'video/vp8')];
}

// The video transceiver for `track` with its plan's encodings (and VP8 preferred when there are
// several); one layer as before otherwise. Returns the encodings used (null: one layer).
export function addVideoTransceiver(pc, track, stream, plan) {
  if (!plan) return { transceiver: pc.addTransceiver(track, { direction: 'sendonly', streams: [stream] }), plan: null };
  const transceiver = pc.addTransceiver(track, { direction: 'sendonly', streams: [stream], sendEncodings: plan });
  const codecs = globalThis.RTCRtpSender?.getCapabilities?.('video')?.codecs || [];
  if (codecs.length && transceiver.setCodecPreferences) transceiver.setCodecPreferences(vp8First(codecs));
  return { transceiver, plan };
}
