// The host console's "Viewers by quality": how many viewers the server sends each simulcast
// layer, and how many have their video paused (their link cannot take even the lowest layer;
// they keep audio and chat). Read from the room status the console polls every second
// (`GET /api/rooms/{room}`: `layers`, lowest first, and `paused_viewers`).
//
// A layer is named by its short side, as the Quality choice names the capture ("720p" for
// 1280x720 and for 720x1280): the status gives each layer's height, and the host's own camera
// gives the picture's shape. A single-layer show (one layer with rid null) shows nothing: there
// is no choice between qualities to report.

// A layer's name: "540p" from its height and the picture's width/height ratio (1 if unknown),
// else "layer N" when the server has not measured its height yet.
export function layerName(layer, index, aspect = 1) {
  const height = Number(layer?.height) || 0;
  if (height <= 0) return `layer ${index + 1}`;
  const width = Math.round(height * (aspect > 0 ? aspect : 1));
  return `${Math.min(width, height)}p`;
}

// The line to show, highest quality first, or '' when there is nothing to say.
export function layerSummary(status, aspect = 1) {
  const layers = Array.isArray(status?.layers) ? status.layers : [];
  if (layers.length === 0 || (layers.length === 1 && layers[0]?.rid == null)) return '';
  const parts = layers.map((l, i) => `${layerName(l, i, aspect)} ${Number(l?.viewers) || 0}`).reverse();
  parts.push(`paused ${Number(status.paused_viewers) || 0}`);
  return `Viewers by quality: ${parts.join(' · ')}`;
}

// Shows the summary in `node` (hidden when empty). `aspect`: the host camera's width/height.
export function renderLayers(node, status, aspect = 1) {
  if (!node) return;
  const text = layerSummary(status, aspect);
  if (node.textContent !== text) node.textContent = text;
  node.hidden = !text;
}
