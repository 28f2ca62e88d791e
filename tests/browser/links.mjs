// A viewer's emulated network link, for browser scenarios run by run.sh (private network, PID
// and mount namespaces, as root).
//
// Layout: the server stays in run.sh's namespace (the "outer" one) and listens on SERVER_IP, an
// address on the outer loopback device. Each viewer gets its own network namespace joined to the
// outer one by a veth pair on its own /24 (outer end .1, viewer end .2, the viewer's default route
// through .1). The server's one ICE candidate (SERVER_IP) is thus reachable from every viewer
// namespace and from the outer namespace itself (the host page), with no forwarding involved.
//
// What a link can do, each changed live:
// - rate: a tbf qdisc on the outer veth end, so it shapes the server -> viewer direction (the
//   one simulcast adapts to). This kernel has tbf but no netem: no added delay.
// - loss: an nftables `numgen random` rule dropping that share of UDP arriving in the viewer's
//   namespace. Dropped on the receiving side: a drop in a sender's output hook makes its
//   sendto fail with EPERM, which no real network does.
// - all UDP dropped, both ways (a viewer behind a UDP-blocking firewall): inbound in the viewer's
//   namespace, outbound at the outer namespace's input (again on the receiving side).
//
// Chromium runs in a viewer's namespace through `chromiumPath()`, a wrapper script that
// playwright-core launches as the browser: `ip netns exec NS chromium "$@"` keeps the pipe
// file descriptors playwright drives Chromium through.
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

// The server's address: HTTP and UDP bind here. Not a 127.x address: in a viewer's namespace
// 127.0.0.0/8 is its own loopback.
export const SERVER_IP = '10.99.0.1';
const TBF_LATENCY_MS = 200; // queue bound: packets that would wait longer are dropped
const TBF_BURST_MS = 20;    // bucket size as time at the rate (at least 4 KB)

async function sh(cmd, ...args) {
  try {
    return (await run(cmd, args)).stdout;
  } catch (e) {
    throw new Error(`${cmd} ${args.join(' ')}: ${e.stderr?.trim() || e.message}`);
  }
}

let outerReady = null;
let nextIndex = 1;

// Once per scenario: SERVER_IP on the outer loopback, and a private /run/netns (a tmpfs in this
// mount namespace) so namespace names never meet those of a test running next to this one.
export function prepareOuter() {
  outerReady ??= (async () => {
    await sh('ip', 'link', 'set', 'lo', 'up');
    await sh('ip', 'addr', 'replace', `${SERVER_IP}/32`, 'dev', 'lo');
    fs.mkdirSync('/run/netns', { recursive: true });
    await sh('mount', '-t', 'tmpfs', 'sellcast-netns', '/run/netns');
  })();
  return outerReady;
}

export class Link {
  // `name`: short, [a-z0-9]; `rateKbit`: null for unlimited; `lossPct`: share of UDP dropped.
  static async create(name, { rateKbit = null, lossPct = 0, dropUdp = false } = {}) {
    if (!/^[a-z0-9]{1,8}$/.test(name)) throw new Error(`bad link name ${name}`);
    await prepareOuter();
    const link = new Link(name, nextIndex++);
    await link.#setUp();
    await link.setRate(rateKbit);
    await link.#applyFilters({ lossPct, dropUdp });
    return link;
  }

  constructor(name, index) {
    this.name = name;
    this.ns = `sc-${name}`;
    this.outerDev = `sc${name}o`;
    this.innerDev = `sc${name}i`;
    this.outerIp = `10.100.${index}.1`;
    this.ip = `10.100.${index}.2`; // the viewer's address, as the server sees it
    this.rateKbit = null;
    this.lossPct = 0;
    this.udpDropped = false;
  }

  async #setUp() {
    const { ns, outerDev, innerDev } = this;
    await sh('ip', 'netns', 'add', ns);
    await sh('ip', 'link', 'add', outerDev, 'type', 'veth', 'peer', 'name', innerDev, 'netns', ns);
    await sh('ip', 'addr', 'add', `${this.outerIp}/24`, 'dev', outerDev);
    await sh('ip', 'link', 'set', outerDev, 'up');
    await this.exec('ip', 'link', 'set', 'lo', 'up');
    await this.exec('ip', 'addr', 'add', `${this.ip}/24`, 'dev', innerDev);
    await this.exec('ip', 'link', 'set', innerDev, 'up');
    await this.exec('ip', 'route', 'add', 'default', 'via', this.outerIp);
    // One table per side, owned by this link: its chains are rewritten whole on every change.
    await this.exec('nft', `add table inet sclink; add chain inet sclink in { type filter hook input priority 0; policy accept; }`);
    await sh('nft', `add table inet sc_${this.name}; add chain inet sc_${this.name} in { type filter hook input priority 0; policy accept; }`);
  }

  // Runs a command inside this link's namespace.
  exec(cmd, ...args) { return sh('ip', 'netns', 'exec', this.ns, cmd, ...args); }

  // Server -> viewer rate in kbit/s, or null for no limit. Applies at once to traffic in flight.
  async setRate(kbit) {
    if (kbit === null || kbit === undefined) {
      if (this.rateKbit !== null) await sh('tc', 'qdisc', 'del', 'dev', this.outerDev, 'root');
      this.rateKbit = null;
      return;
    }
    if (!(kbit > 0)) throw new Error(`bad rate ${kbit}`);
    const burstBytes = Math.max(4096, Math.round(kbit * 1000 / 8 * TBF_BURST_MS / 1000));
    await sh('tc', 'qdisc', 'replace', 'dev', this.outerDev, 'root', 'tbf', 'rate', `${kbit}kbit`,
      'burst', String(burstBytes), 'latency', `${TBF_LATENCY_MS}ms`);
    this.rateKbit = kbit;
  }

  // Share (0-100, to 0.1 %) of UDP datagrams arriving at the viewer that are dropped.
  setLoss(pct) { return this.#applyFilters({ lossPct: pct, dropUdp: this.udpDropped }); }

  // Every UDP datagram from and to the viewer dropped (on) or let through again (off).
  dropAllUdp(on) { return this.#applyFilters({ lossPct: this.lossPct, dropUdp: Boolean(on) }); }

  async #applyFilters({ lossPct, dropUdp }) {
    if (!(lossPct >= 0 && lossPct <= 100)) throw new Error(`bad loss ${lossPct}`);
    const perMille = Math.round(lossPct * 10);
    const inner = [`flush chain inet sclink in`];
    if (dropUdp) inner.push(`add rule inet sclink in iifname ${this.innerDev} meta l4proto udp counter drop`);
    else if (perMille > 0) inner.push(`add rule inet sclink in iifname ${this.innerDev} meta l4proto udp numgen random mod 1000 < ${perMille} drop`);
    await this.exec('nft', inner.join('; '));
    const outer = [`flush chain inet sc_${this.name} in`];
    if (dropUdp) outer.push(`add rule inet sc_${this.name} in iifname ${this.outerDev} meta l4proto udp counter drop`);
    await sh('nft', outer.join('; '));
    this.lossPct = lossPct;
    this.udpDropped = dropUdp;
  }

  // UDP datagrams the all-UDP drop threw away, both ways (proof the viewer's UDP went nowhere).
  async droppedUdp() {
    const count = out => Number(out.match(/counter packets (\d+)/)?.[1] ?? 0);
    const inbound = count(await this.exec('nft', 'list', 'chain', 'inet', 'sclink', 'in'));
    const outbound = count(await sh('nft', 'list', 'chain', 'inet', `sc_${this.name}`, 'in'));
    return inbound + outbound;
  }

  // An executable that runs Chromium in this namespace, for playwright's `executablePath`.
  chromiumPath(dir, chromium = process.env.CHROMIUM || '/usr/bin/chromium') {
    const file = path.join(dir, `chromium-${this.name}.sh`);
    fs.writeFileSync(file, `#!/bin/sh\nexec ip netns exec '${this.ns}' '${chromium}' "$@"\n`, { mode: 0o755 });
    return file;
  }

  // What the link passes from the outer namespace to the viewer, measured: `seconds` of UDP
  // datagrams of `size` bytes sent at `offerKbit` (above the rate to measure the rate, below it
  // to measure loss), counted by a receiver in the viewer's namespace. Returns the received
  // rate over the sending window and the share lost.
  async measure({ seconds = 2, offerKbit = 4000, size = 1000, port = 40000 } = {}) {
    const receiver = spawn('ip', ['netns', 'exec', this.ns, process.execPath, '-e', RECEIVER, this.ip, String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
    const ready = new Promise((resolve, reject) => {
      receiver.stdout.once('data', resolve);
      receiver.once('exit', code => reject(new Error(`receiver exited with ${code}`)));
    });
    await ready;
    const { createSocket } = await import('node:dgram');
    const sock = createSocket('udp4');
    const payload = Buffer.alloc(size, 7);
    const perMs = offerKbit * 1000 / 8 / size / 1000; // datagrams per ms
    const start = Date.now();
    let sent = 0;
    while (Date.now() - start < seconds * 1000) {
      const due = Math.floor((Date.now() - start) * perMs) + 1;
      while (sent < due) {
        await new Promise((resolve, reject) => sock.send(payload, port, this.ip, e => (e ? reject(e) : resolve())));
        sent++;
      }
      await new Promise(r => setTimeout(r, 2));
    }
    sock.close();
    // What the link still holds drains within its queue bound; then the receiver reports.
    await new Promise(r => setTimeout(r, TBF_LATENCY_MS + 300));
    const counted = new Promise(resolve => {
      let out = '';
      receiver.stdout.on('data', d => { out += d; });
      receiver.once('exit', () => resolve(JSON.parse(out)));
    });
    receiver.kill('SIGTERM');
    const { received, firstMs, lastMs } = await counted;
    const spanMs = Math.max(1, lastMs - firstMs);
    return {
      offered_kbit: offerKbit,
      sent,
      received,
      kbit: Math.round(received * size * 8 / spanMs),
      loss_pct: Math.round((1 - received / sent) * 1000) / 10,
    };
  }

  async close() {
    await sh('nft', `delete table inet sc_${this.name}`).catch(() => {});
    await sh('ip', 'link', 'del', this.outerDev).catch(() => {});
    await sh('ip', 'netns', 'del', this.ns).catch(() => {});
  }
}

// Counts datagrams on (address, port) until SIGTERM; prints one line when listening, then
// {received, firstMs, lastMs}.
const RECEIVER = `
const s = require('node:dgram').createSocket('udp4');
let received = 0, firstMs = 0, lastMs = 0;
s.on('message', () => { const t = Date.now(); if (!received) firstMs = t; lastMs = t; received++; });
s.bind(Number(process.argv[2]), process.argv[1], () => process.stdout.write('listening\\n'));
process.on('SIGTERM', () => { process.stdout.write(JSON.stringify({ received, firstMs, lastMs })); process.exit(0); });
`;
