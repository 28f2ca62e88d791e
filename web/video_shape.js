// The shape of the video the viewer receives, as `body[data-video-shape]` (portrait, landscape
// or square), from the decoded frame size; video_shape.css fits the video to the screen by it.
// It follows the stream: a host who changes shape between shows is fitted anew.
const video = document.getElementById('video');

function update() {
  const w = video.videoWidth;
  const h = video.videoHeight;
  if (!w || !h) return;
  const shape = h > w ? 'portrait' : w > h ? 'landscape' : 'square';
  if (document.body.dataset.videoShape !== shape) document.body.dataset.videoShape = shape;
}
video?.addEventListener('resize', update);
video?.addEventListener('loadedmetadata', update);
