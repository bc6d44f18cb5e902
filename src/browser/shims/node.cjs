// What the browser build (tools/build-browser.ts) puts in place of every `node:` module and of
// @tensorflow/tfjs-node. The browser entry (src/browser/index.ts) reaches none of the Node-only
// paths (Checkpoint.open, loadConfig of a path, the kernel's worker threads); should one run
// anyway, it stops with this one line rather than a missing-global error. (The exact kernel's
// threads are not Node's here: the build swaps layers/kernels/threads.ts for its Web Worker variant.)
'use strict';
const unavailable = (name) => () => {
  throw new Error(`phi4-ts/browser: ${name} is Node-only (not available in the browser build)`);
};
module.exports = new Proxy({ endianness: () => 'LE' }, {
  get: (own, key) => (key in own ? own[key] : key === '__esModule' ? false : unavailable(String(key))),
});
