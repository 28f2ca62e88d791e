// The host page's capture choice (web/capture.js) and the Sales panel's conversion
// (web/sales_panel.js) under Node: the constraints asked of the camera for each choice, the
// fallback when a browser cannot crop, and how conversion reads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { targetSize, openCamera, describe } from '../../web/capture.js';
import { conversionText } from '../../web/sales_panel.js';

// A getUserMedia that records what it was asked and refuses `exact` aspect ratios when `crops`
// is false (as a browser that cannot crop does).
function fakeMedia({ crops }) {
  const asked = [];
  const mediaDevices = {
    async getUserMedia(c) {
      asked.push(c);
      if (!crops && c.video?.aspectRatio?.exact) throw Object.assign(new Error('cannot crop'), { name: 'OverconstrainedError' });
      return { c };
    },
  };
  Object.defineProperty(globalThis, 'navigator', { value: { mediaDevices }, configurable: true });
  return asked;
}

test('a quality names the short side: portrait 720p is 720x1280, landscape 1080p is 1920x1080', () => {
  assert.deepEqual(targetSize({ shape: 'portrait', short: 720 }), { width: 720, height: 1280 });
  assert.deepEqual(targetSize({ shape: 'landscape', short: 1080 }), { width: 1920, height: 1080 });
  assert.deepEqual(targetSize({ shape: 'portrait', short: 360 }), { width: 360, height: 640 });
  assert.equal(describe(405, 720), '405×720 portrait');
});

test('portrait asks the chosen camera for an exact 9:16, cropped, at the chosen size', async () => {
  const asked = fakeMedia({ crops: true });
  await openCamera({ shape: 'portrait', short: 720 }, 'cam-1', 'mic-1');
  assert.equal(asked.length, 1);
  const v = asked[0].video;
  assert.equal(v.aspectRatio.exact, 9 / 16);
  assert.equal(v.resizeMode, 'crop-and-scale');
  assert.deepEqual([v.width.ideal, v.height.ideal], [720, 1280]);
  assert.deepEqual(v.deviceId, { exact: 'cam-1' });
  assert.deepEqual(asked[0].audio, { deviceId: { exact: 'mic-1' } });
});

test('a browser that cannot crop gets the shape as a preference instead of failing', async () => {
  const asked = fakeMedia({ crops: false });
  const stream = await openCamera({ shape: 'landscape', short: 540 }, '', '');
  assert.ok(stream);
  assert.equal(asked.length, 2);
  assert.equal(asked[1].video.aspectRatio.ideal, 16 / 9);
  assert.equal(asked[1].video.aspectRatio.exact, undefined);
  assert.equal(asked[1].audio, true);
});

test("the camera's own shape asks for no crop and no size", async () => {
  const asked = fakeMedia({ crops: true });
  await openCamera({ shape: 'camera', short: 720 }, '', '');
  assert.deepEqual(asked[0].video, {});
});

test('conversion is orders over peak viewers, and none without viewers', () => {
  assert.equal(conversionText(1, 1), '100 %');
  assert.equal(conversionText(1, 3), '33 %');
  assert.equal(conversionText(1, 40), '2.5 %');
  assert.equal(conversionText(0, 5), '0 %');
  assert.equal(conversionText(3, 0), '–');
});
