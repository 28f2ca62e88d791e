// The control run of tcp_only.mjs: the same UDP-blocked viewer against a server without
// --tcp-port. It must not play (asserted in crates/sellcast-server/tests/browser_tcp_only.rs).
process.env.TCP_CONTROL = '1';
await import('./tcp_only.mjs');
