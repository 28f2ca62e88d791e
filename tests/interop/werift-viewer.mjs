// werift (pure TypeScript WebRTC, npm) as a WHEP viewer: VP8 and H264 on its own payload types,
// Opus, optionally the `sellcast` data channel with a hello. Same arguments and output as ldc-viewer.mjs.
import { RTCPeerConnection, RTCRtpCodecParameters } from 'werift';
import { Receipt, args, codecMap, postOffer, waitFor } from './lib.mjs';

const a = args();
const report = new Receipt('werift', 0);
const channel = a.channel === 'yes' ? { opened: false, types: [] } : null;
const pc = new RTCPeerConnection({
  iceServers: [], iceAdditionalHostAddresses: ['127.0.0.1'], iceUseIpv6: false,
  codecs: {
    video: [
      new RTCRtpCodecParameters({ mimeType: 'video/VP8', clockRate: 90000, payloadType: 98, rtcpFeedback: [{ type: 'nack' }, { type: 'nack', parameter: 'pli' }] }),
      new RTCRtpCodecParameters({ mimeType: 'video/H264', clockRate: 90000, payloadType: 104, parameters: 'profile-level-id=42e01f;packetization-mode=1;level-asymmetry-allowed=1', rtcpFeedback: [{ type: 'nack' }, { type: 'nack', parameter: 'pli' }] }),
    ],
    audio: [new RTCRtpCodecParameters({ mimeType: 'audio/opus', clockRate: 48000, channels: 2, payloadType: 109 })],
  },
});
try {
  let codecs = new Map();
  const vt = pc.addTransceiver('video', { direction: 'recvonly' });
  const at = pc.addTransceiver('audio', { direction: 'recvonly' });
  vt.onTrack.subscribe(track => track.onReceiveRtp.subscribe(rtp => report.handleVideo(rtp.serialize(), codecs)));
  at.onTrack.subscribe(track => track.onReceiveRtp.subscribe(rtp => report.handleAudio(rtp.serialize(), codecs)));
  if (channel) {
    const dc = pc.createDataChannel('sellcast', { ordered: true });
    dc.onopen = () => { channel.opened = true; dc.send(JSON.stringify({ type: 'hello' })); };
    dc.onmessage = ev => { try { channel.types.push(JSON.parse(String(ev.data)).type); } catch { channel.types.push('unparsable'); } };
  }
  await pc.setLocalDescription(await pc.createOffer());
  await waitFor('ICE gathering', () => pc.iceGatheringState === 'complete', 5000, 20);
  const offer = pc.localDescription.sdp;
  codecs = codecMap(offer);
  report.postedAt = Date.now();
  const { answer } = await postOffer(a.url, a.token, offer);
  await pc.setRemoteDescription({ type: 'answer', sdp: answer });
  const channelDone = () => !channel || (channel.types.includes('welcome') && channel.types.includes('snapshot'));
  await waitFor('2 s of video and audio', () => report.enough() && channelDone(), Number(a.timeout || 20000), 50).catch(() => {});
  console.log(`VIEWER ${JSON.stringify(report.report({ channel, state: pc.connectionState }))}`);
} catch (e) {
  console.log(`VIEWER ${JSON.stringify(report.report({ channel, error: e.message }))}`);
}
pc.close().catch?.(() => {});
process.exit(0);
