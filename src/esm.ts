// The entry point of `import 'phi4-ts'` (package.json "exports", condition "import"): the whole
// API of ./index.ts, with the tfjs backend ready before the importing module's first line runs.
// `require('phi4-ts')` loads ./index.ts instead: Node's require of an ES module refuses a
// top-level await, so there the app awaits `ready()` itself.

export * from './index.js';
import { ready } from './backend.js';

await ready();
