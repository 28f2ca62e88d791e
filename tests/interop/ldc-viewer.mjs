// libdatachannel (npm node-datachannel) as a WHEP viewer: VP8 and H264 offered on its own payload
// types (not the server's), Opus, optionally the `sellcast` data channel with a hello.
// Args: --url WHEP_URL --token T --channel yes|no --timeout MS. Prints `VIEWER {json}`.
import ndc from 'node-datachannel';
import { Receipt, args, codecMap, postOffer, waitFor, sleep } from './lib.mjs';

const a = args();
const report = new Receipt('libdatachannel', 0);
const channel = a.channel === 'yes' ? { opened: false, types: [] } : null;
const pc = new ndc.PeerConnection('viewer', { iceServers: [], disableAutoNegotiation: true });
try {
  const video = new ndc.Video('0', 'RecvOnly');
  video.addVP8Codec(97);
  video.addH264Codec(100, 'profile-level-id=42e01f;packetization-mode=1;level-asymmetry-allowed=1');
  const vt = pc.addTrack(video);
  vt.setMediaHandler(new ndc.RtcpReceivingSession());
  const audio = new ndc.Audio('1', 'RecvOnly');
  audio.addOpusCodec(111);
  const at = pc.addTrack(audio);
  at.setMediaHandler(new ndc.RtcpReceivingSession());
  if (channel) {
    const dc = pc.createDataChannel('sellcast', { ordered: true });
    dc.onOpen(() => { channel.opened = true; dc.sendMessage(JSON.stringify({ type: 'hello' })); });
    dc.onMessage(m => { try { channel.types.push(JSON.parse(String(m)).type); } catch { channel.types.push('unparsable'); } });
  }
  pc.setLocalDescription();
  await waitFor('ICE gathering', () => pc.gatheringState() === 'complete', 5000, 20);
  const offer = pc.localDescription().sdp;
  const codecs = codecMap(offer);
  vt.onMessage(b => report.handleVideo(b, codecs));
  at.onMessage(b => report.handleAudio(b, codecs));
  report.postedAt = Date.now();
  const { answer } = await postOffer(a.url, a.token, offer);
  pc.setRemoteDescription(answer, 'answer');
  const channelDone = () => !channel || (channel.types.includes('welcome') && channel.types.includes('snapshot'));
  await waitFor('2 s of video and audio', () => report.enough() && channelDone(), Number(a.timeout || 20000), 50).catch(() => {});
  console.log(`VIEWER ${JSON.stringify(report.report({ channel, state: pc.state() }))}`);
} catch (e) {
  console.log(`VIEWER ${JSON.stringify(report.report({ channel, error: e.message }))}`);
}
pc.close();
await sleep(50);
process.exit(0);
