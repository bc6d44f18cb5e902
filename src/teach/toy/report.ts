// One paragraph about how a toy checkpoint was made and how well it does, from its training.json
// (written by src/teach/toy/train.ts): the walkthrough document and the HTML page quote it.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The summary of `dir`/training.json, or null when the checkpoint has none; `code` marks up a command. */
export function trainingSummary(dir: string, code = (s: string) => `\`${s}\``): string | null {
  const file = join(dir, 'training.json');
  if (!existsSync(file)) return null;
  const t = JSON.parse(readFileSync(file, 'utf8'));
  const h = t.held_out;
  const part = (x: { lengths: string; predictions: number; accuracy: number }) => `${x.accuracy.toFixed(4)} on ${x.predictions} predictions (${x.lengths})`;
  return `Trained by ${code(t.command)}: ${t.steps} steps of ${t.batch} sequences, Adam with peak learning rate ${t.lr} `
    + `(${t.warmup} warmup steps, cosine decay, gradients clipped to norm ${t.clip}), seed ${t.seed}, ${t.seconds} s on the ${t.backend} backend. `
    + `Held-out accuracy (${h.sequences} sequences never drawn in training, ${h.predictions} predictions): ${h.accuracy.toFixed(4)}; `
    + `short factors ${part(h.short)}, long factors ${part(h.long)}. `
    + `Chance: ${h.chance_uniform} for a uniform guess among the letters, ${h.chance_set_guess} for the best guess without induction `
    + '(uniform over the first copy\'s letters not yet repeated).';
}
