// axe-core (tests/browser/package.json, pinned) run in a page: its serious and critical
// violations, each as `rule-id: nodes` so a failure says what to fix.
//
// The pages' CSP forbids inline scripts, so axe is not added as a <script> (addScriptTag would
// inline it and be blocked): its source is evaluated through the DevTools protocol, which a
// page's CSP does not govern. Frames are left out (`iframes: false`): an iframe is its own page
// with its own check.
import fs from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const axeSource = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

// The violations of impact `serious` or `critical` in `page` now.
export async function seriousViolations(page) {
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.evaluate(axeSource);
  const violations = await page.evaluate(async () => {
    const r = await window.axe.run(document, { iframes: false, resultTypes: ['violations'] });
    return r.violations.map(v => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 6).map(n => `${n.target.join(' ')} [${(n.failureSummary || '').replace(/\s+/g, ' ').slice(0, 200)}]`) }));
  });
  return violations.filter(v => v.impact === 'serious' || v.impact === 'critical');
}

// Throws when `page` has serious or critical violations, naming each; `where` names the page's
// state (e.g. 'viewer live with a pinned product').
export async function assertAccessible(page, where) {
  const bad = await seriousViolations(page);
  if (bad.length) throw new Error(describeViolations(bad, where));
}

export function describeViolations(bad, where) {
  return `axe-core found ${bad.length} serious/critical violation(s) on ${where}: ${bad.map(v => `${v.id} (${v.impact}: ${v.help}) at ${v.nodes.join(', ')}`).join(' | ')}`;
}
