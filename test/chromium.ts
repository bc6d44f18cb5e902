// Headless chromium for the browser tests (test/walkthrough-browser.test.ts, test/browser-lib.test.ts),
// driven by playwright-core: where the binary is, what happens without it, and how it starts.

import * as fs from 'node:fs';
import { type Browser, chromium } from 'playwright-core';

export const CHROMIUM = process.env.PHI4_CHROMIUM ?? '/usr/bin/chromium';

/**
 * Without chromium the suite's test is skipped with one line saying so (pending in the summary),
 * unless PHI4_REQUIRE_CHROMIUM is set, as .ci/run sets it after installing chromium: then it fails.
 */
export function skipWithoutChromium(ctx: Mocha.Context): void {
  if (fs.existsSync(CHROMIUM)) return;
  const why = `${CHROMIUM} not found: apt-get install chromium (as .ci/run does), or set PHI4_CHROMIUM`;
  if (process.env.PHI4_REQUIRE_CHROMIUM) throw new Error(why);
  console.log(`      skipped: ${why}`);
  ctx.skip();
}

/** playwright gives launch() a fresh temporary profile itself. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
}
