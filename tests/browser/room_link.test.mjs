// The watch and host pages' room protocol (web/room.js) under Node, on a fake channel: what
// the page sends when a live channel skips a seq. The real server skips chat for a congested
// viewer (tests/data_channel_congestion.rs); here the page's answer to such a gap is checked.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RoomLink } from '../../web/room.js';

function linked() {
  const applied = [];
  const link = new RoomLink({ onEvent: f => applied.push(f.seq) });
  const channel = { readyState: 'open', sent: [], send(text) { this.sent.push(JSON.parse(text)); } };
  link.attach(channel);
  channel.onopen();
  const receive = frame => channel.onmessage({ data: JSON.stringify(frame) });
  return { link, channel, applied, receive };
}

const event = (epoch, seq) => ({ type: 'chat', epoch, seq, text: `line ${seq}` });

test('a seq gap on a live channel sends the same hello again and applies nothing out of order', () => {
  const { channel, applied, receive } = linked();
  assert.deepEqual(channel.sent, [{ type: 'hello', resume: null }]);
  receive({ type: 'welcome', epoch: 5, seq: 10, resumed: false });
  receive(event(5, 11));
  receive(event(5, 13)); // 12 never came
  receive(event(5, 14));
  assert.deepEqual(applied, [11], 'nothing past the gap is applied');
  assert.deepEqual(channel.sent.slice(1), [{ type: 'hello', resume: { epoch: 5, seq: 11 } }],
    'one hello, resuming from the last applied event');

  // The server answers with a resumed welcome and the missed events: applied once, in order.
  receive({ type: 'welcome', epoch: 5, seq: 14, resumed: true });
  for (const seq of [12, 13, 14]) receive(event(5, seq));
  receive(event(5, 13)); // a duplicate
  assert.deepEqual(applied, [11, 12, 13, 14]);
  assert.equal(channel.sent.length, 2, 'no further hello once caught up');
});

test('an event from another epoch sends the hello again', () => {
  const { channel, applied, receive } = linked();
  receive({ type: 'welcome', epoch: 5, seq: 10, resumed: false });
  receive(event(6, 1));
  assert.deepEqual(applied, []);
  assert.deepEqual(channel.sent.at(-1), { type: 'hello', resume: { epoch: 5, seq: 10 } });
});

test('a draining frame goes to onDraining and is neither an event nor a direct frame', () => {
  const drained = [], direct = [], applied = [];
  const link = new RoomLink({ onDraining: f => drained.push(f), onDirect: f => direct.push(f), onEvent: f => applied.push(f) });
  const channel = { readyState: 'open', sent: [], send(text) { this.sent.push(JSON.parse(text)); } };
  link.attach(channel);
  channel.onmessage({ data: JSON.stringify({ type: 'draining', reconnect_after_ms: 2000 }) });
  assert.deepEqual(drained, [{ type: 'draining', reconnect_after_ms: 2000 }]);
  assert.deepEqual(direct, []);
  assert.deepEqual(applied, []);
});
