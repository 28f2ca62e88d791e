// The shape and size of the host's video: portrait 9:16 (the live-shopping norm, and the default)
// or landscape 16:9, at 1080p, 720p, 540p or 360p; or the camera's own picture, uncropped. The
// number names the short side, as in 720p = 1280x720: portrait 720p asks the camera for 720x1280.
//
// The aspect ratio is asked as `exact`, so a landscape webcam's picture is cropped to 9:16
// (browsers that crop, such as Chromium, do it before encoding, so viewers receive 9:16); the
// size is `ideal`: a camera smaller than the choice gives what it has, and the page says what it
// actually sends. A browser that cannot crop refuses `exact` (OverconstrainedError): the
// camera is then opened with the shape as a preference, and the page shows the size it got.
//
// The choice is made before going live (changes re-apply the constraints to the open camera) and
// kept in localStorage for the next show. A link may set it: `/host/ROOM?shape=landscape&quality=360`.
const $ = id => document.getElementById(id);
const STORE_KEY = 'sellcast.capture';
export const SHAPES = ['portrait', 'landscape', 'camera'];
export const SHORT_SIDES = [1080, 720, 540, 360];
const DEFAULT = { shape: 'portrait', short: 720 };

// The choice in the page's controls (else the link's, else the stored one, else the default).
export function readChoice() {
  const stored = (() => { try { return JSON.parse(localStorage.getItem(STORE_KEY)) || {}; } catch { return {}; } })();
  const q = new URLSearchParams(location.search);
  const shape = $('shape')?.value || q.get('shape') || stored.shape;
  const short = Number($('resolution')?.value || q.get('quality')?.replace(/p$/, '') || stored.short);
  return {
    shape: SHAPES.includes(shape) ? shape : DEFAULT.shape,
    short: SHORT_SIDES.includes(short) ? short : DEFAULT.short,
  };
}

// The size asked of the camera for a choice, in CSS terms (width x height as viewers see it).
export function targetSize({ shape, short }) {
  const long = Math.round(short * 16 / 9);
  return shape === 'portrait' ? { width: short, height: long } : { width: long, height: short };
}

function videoConstraints(choice, deviceId, cropping) {
  if (choice.shape === 'camera') return deviceId ? { deviceId: { exact: deviceId } } : {};
  const { width, height } = targetSize(choice);
  const c = {
    width: { ideal: width },
    height: { ideal: height },
    aspectRatio: cropping ? { exact: width / height } : { ideal: width / height },
  };
  if (cropping) c.resizeMode = 'crop-and-scale';
  if (deviceId) c.deviceId = { exact: deviceId };
  return c;
}

// Camera and microphone for `choice`: cropped to the shape where the browser can, else the
// nearest the camera offers.
export async function openCamera(choice, cameraId, micId) {
  const audio = micId ? { deviceId: { exact: micId } } : true;
  try {
    return await navigator.mediaDevices.getUserMedia({ video: videoConstraints(choice, cameraId, true), audio });
  } catch (e) {
    if (e.name !== 'OverconstrainedError') throw e;
  }
  return navigator.mediaDevices.getUserMedia({ video: videoConstraints(choice, cameraId, false), audio });
}

// Re-shape an open camera track (before going live: no new permission prompt, no new device).
export async function applyChoice(track, choice) {
  const deviceId = track.getSettings().deviceId;
  try {
    await track.applyConstraints(videoConstraints(choice, deviceId, true));
  } catch (e) {
    if (e.name !== 'OverconstrainedError') throw e;
    await track.applyConstraints(videoConstraints(choice, deviceId, false));
  }
}

// What the camera sends now, as the host should read it: "405×720 portrait".
export function describe(width, height) {
  if (!width || !height) return '';
  return `${width}×${height} ${height > width ? 'portrait' : width > height ? 'landscape' : 'square'}`;
}

// Binds the Shape and Quality controls: restores the stored choice, re-applies a change to the
// open camera (`currentTrack()`), and shows the size the preview really receives.
export function bindCaptureControls(currentTrack, preview, onError) {
  $('shape').value = '';
  $('resolution').value = '';
  const choice = readChoice();
  $('shape').value = choice.shape;
  $('resolution').value = String(choice.short);
  document.body.dataset.shape = choice.shape;
  const changed = async () => {
    const next = readChoice();
    localStorage.setItem(STORE_KEY, JSON.stringify(next));
    document.body.dataset.shape = next.shape;
    const track = currentTrack();
    if (track) await applyChoice(track, next).catch(onError);
    showSize();
  };
  $('shape').addEventListener('change', changed);
  $('resolution').addEventListener('change', changed);
  const showSize = () => {
    const choice = readChoice();
    const wanted = targetSize(choice);
    const got = describe(preview.videoWidth, preview.videoHeight);
    const short = choice.shape !== 'camera' && preview.videoWidth * preview.videoHeight < wanted.width * wanted.height;
    $('capture-size').textContent = got ? `Camera sends ${got}${short ? ` (${wanted.width}×${wanted.height} asked; this camera gives no more)` : ''}` : '';
  };
  preview.addEventListener('resize', showSize);
  preview.addEventListener('loadedmetadata', showSize);
}
