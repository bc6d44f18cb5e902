// What compare reads from a dump, whatever wrote it: each tensor's shape and a reader for its
// values, under the dump's own names. Maps (./map.ts, ./maps/) rename and reshape entries, and
// blame (./diagnose/blame.ts) reads them; they import this, not compare.ts, so that compare.ts
// depends on them and never the other way round.

import type { Numeric } from '../oracle/metrics.js';

/** One tensor of a dump. */
export interface Entry {
  shape: number[];
  /** Integer dtype (ids, masks): compared exactly, never as a tap. */
  int: boolean;
  read(): Numeric;
  /** The op that made it, where the dump records ops (a llama.cpp capture's `ops` metadata): "ROPE", "SCALE". */
  op?: string;
}
export type Entries = Map<string, Entry>;
