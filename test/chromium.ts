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

/**
 * WebGPU on SwiftShader, chromium's own Vulkan on the CPU (no GPU here): a real WebGPU
 * implementation, its adapter's architecture "swiftshader" (test/browser-webgpu.test.ts).
 * ANGLE on SwiftShader too (`--use-gl=angle --use-angle=swiftshader`): tfjs's webgpu `dataSync`
 * reads a tensor back by drawing a WebGPU canvas into a 2D one, and without a GL for that canvas
 * chromium 150 returns zeros and destroys the device (measured; async `data()` was right).
 */
const SOFTWARE_WEBGPU = ['--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-vulkan=swiftshader', '--use-webgpu-adapter=swiftshader',
  '--use-gl=angle', '--use-angle=swiftshader', '--enable-unsafe-swiftshader'];

/**
 * playwright gives launch() a fresh temporary profile itself. By default without a GPU
 * (navigator.gpu is there, but gives no adapter); `softwareWebgpu`: WebGPU on SwiftShader.
 */
export function launchChromium(opts: { softwareWebgpu?: boolean } = {}): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', ...(opts.softwareWebgpu ? SOFTWARE_WEBGPU : ['--disable-gpu']), '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}
