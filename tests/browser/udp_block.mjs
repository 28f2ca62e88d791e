// A viewer network namespace that drops every UDP datagram (a firewall that lets only TCP
// through), joined to this scenario's namespace by a veth, and a Chromium wrapper that runs the
// browser inside it. Follows ../shared/notes/links.md: 127.x addresses on both veth ends (with
// route_localnet) so Chromium's loopback flag covers them; the drop is on the viewer's input
// hook, so its own sends still leave (and go unanswered), as behind a real firewall.
//
// Needs root (run.sh's private namespace is enough), iproute2 and nftables.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const sh = (cmd, args) => execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();

// Create namespace `name` with `inner` on its end and `outer` on ours; `dropUdp` adds the
// nftables rule. Returns the wrapper's path (for playwright's executablePath) and a cleanup.
export function udpBlockedNamespace({ name, tmp, outer = '127.1.0.1', inner = '127.1.0.2', dropUdp = true }) {
  try { sh('ip', ['netns', 'del', name]); } catch { /* none left from an earlier run */ }
  sh('ip', ['netns', 'add', name]);
  sh('ip', ['link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1', 'netns', name]);
  sh('sysctl', ['-qw', 'net.ipv4.conf.all.route_localnet=1', 'net.ipv4.conf.v0.route_localnet=1']);
  sh('ip', ['netns', 'exec', name, 'sysctl', '-qw', 'net.ipv4.conf.all.route_localnet=1', 'net.ipv4.conf.v1.route_localnet=1']);
  sh('ip', ['addr', 'add', `${outer}/24`, 'dev', 'v0']);
  sh('ip', ['link', 'set', 'v0', 'up']);
  sh('ip', ['-n', name, 'addr', 'add', `${inner}/24`, 'dev', 'v1']);
  sh('ip', ['-n', name, 'link', 'set', 'v1', 'up']);
  sh('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  if (dropUdp) {
    sh('ip', ['netns', 'exec', name, 'nft', 'add', 'table', 'inet', 'udpblock']);
    sh('ip', ['netns', 'exec', name, 'nft', 'add', 'chain', 'inet', 'udpblock', 'in', '{ type filter hook input priority 0; }']);
    sh('ip', ['netns', 'exec', name, 'nft', 'add', 'rule', 'inet', 'udpblock', 'in', 'iifname', 'v1', 'meta', 'l4proto', 'udp', 'counter', 'drop']);
  }
  const chromium = process.env.CHROMIUM || '/usr/bin/chromium';
  const wrapper = path.join(tmp, `chromium-in-${name}.sh`);
  fs.writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${name} ${chromium} "$@"\n`, { mode: 0o755 });
  return {
    executablePath: wrapper,
    // UDP datagrams the rule dropped (proof the viewer's UDP really went nowhere).
    droppedUdp() {
      if (!dropUdp) return 0;
      const out = sh('ip', ['netns', 'exec', name, 'nft', 'list', 'chain', 'inet', 'udpblock', 'in']);
      const m = out.match(/counter packets (\d+)/);
      return m ? Number(m[1]) : 0;
    },
    cleanup() { try { sh('ip', ['netns', 'del', name]); } catch { /* already gone */ } },
  };
}
