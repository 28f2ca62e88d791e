// Writes a Y4M clip whose frames carry their own number, for measuring glass-to-glass delay:
// the top band holds 16 bits as black/white blocks, read back from a <video> with a canvas.
import fs from 'node:fs';

export const WIDTH = 320;
export const HEIGHT = 240;
export const FPS = 30;
export const BITS = 16;
export const BAND = 24; // rows of the top band

export function writeClip(path, frames = 300) {
  writeSizedClip(path, frames, { width: WIDTH, height: HEIGHT, band: BAND, texture: 'gradient' });
}

// A clip of any size (`band` rows of frame-number blocks on top). The texture below the band:
// 'gradient' (cheap to encode) or 'noise', a fixed random picture of `noise.cell`-pixel cells
// with luma from `noise.lo` to `noise.hi`, panned `noise.pan` px a frame, which keeps an encoder
// busy (simulcast layers then send close to their targets). The default (2 px cells, luma
// 40..200, 3 px a frame) is hard enough that VP8 at 1.5 Mbit/s keeps its bitrate by sending
// 720p at 2 frames a second; softer noise keeps the frame rate.
export function writeSizedClip(path, frames, { width, height, band, texture, noise: shape = {} }) {
  const WIDTH = width, HEIGHT = height, BAND = band, BLOCK = width / BITS;
  const { cell = 2, lo = 40, hi = 200, pan = 3 } = shape;
  const noise = texture === 'noise' ? randomPicture(WIDTH * 2, HEIGHT, cell, lo, hi) : null;
  const fd = fs.openSync(path, 'w');
  fs.writeSync(fd, `YUV4MPEG2 W${WIDTH} H${HEIGHT} F${FPS}:1 Ip A1:1 C420jpeg\n`);
  const ySize = WIDTH * HEIGHT;
  const cSize = (WIDTH / 2) * (HEIGHT / 2);
  const frame = Buffer.alloc(ySize + 2 * cSize);
  frame.fill(128, ySize); // neutral chroma
  for (let f = 0; f < frames; f++) {
    for (let y = 0; y < HEIGHT; y++) {
      for (let x = 0; x < WIDTH; x++) {
        let v;
        if (y < BAND) {
          const bit = (f >> (BITS - 1 - Math.floor(x / BLOCK))) & 1;
          v = bit ? 235 : 16;
        } else {
          v = noise ? noise[y * WIDTH * 2 + ((x + f * pan) % (WIDTH * 2))] : 40 + ((x + y * 2 + f * 6) % 160);
        }
        frame[y * WIDTH + x] = v;
      }
    }
    fs.writeSync(fd, 'FRAME\n');
    fs.writeSync(fd, frame);
  }
  fs.closeSync(fd);
}

// Luma lo..hi from a fixed seed, in cell x cell pixel squares (so scaled-down layers keep some
// detail).
function randomPicture(width, height, cell, lo, hi) {
  const out = Buffer.alloc(width * height);
  let seed = 12345;
  for (let y = 0; y < height; y += cell) {
    for (let x = 0; x < width; x += cell) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      const v = lo + ((seed >>> 16) % (hi - lo + 1));
      for (let dy = 0; dy < cell && y + dy < height; dy++) {
        for (let dx = 0; dx < cell && x + dx < width; dx++) out[(y + dy) * width + x + dx] = v;
      }
    }
  }
  return out;
}

// Runs in the page: the frame number shown by a <video>, or -1 if unreadable.
export const readFrameNumberSource = frameNumberReader({ width: WIDTH, height: HEIGHT, band: BAND });

// The reader for a clip written by writeSizedClip with these dimensions (the picture shown may be
// any size: the band is read as the same share of its height).
export function frameNumberReader({ width, height, band }) {
  const WIDTH = width, HEIGHT = height, BAND = band, BLOCK = width / BITS;
  return `
(video) => {
  if (!video || video.videoWidth === 0) return -1;
  const c = window.__g2gCanvas || (window.__g2gCanvas = document.createElement('canvas'));
  c.width = ${WIDTH}; c.height = ${BAND};
  const ctx = c.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(video, 0, 0, video.videoWidth, video.videoHeight * ${BAND} / ${HEIGHT}, 0, 0, ${WIDTH}, ${BAND});
  const row = ctx.getImageData(0, ${BAND / 2}, ${WIDTH}, 1).data;
  let n = 0;
  for (let i = 0; i < ${BITS}; i++) {
    const x = Math.floor((i + 0.5) * ${BLOCK});
    const l = row[x * 4] * 0.299 + row[x * 4 + 1] * 0.587 + row[x * 4 + 2] * 0.114;
    if (l > 90 && l < 165) return -1; // blurred edge: not a clean read
    n = (n << 1) | (l >= 128 ? 1 : 0);
  }
  return n;
}`;
}
