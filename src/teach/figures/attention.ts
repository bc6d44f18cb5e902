// Figure 2, attention per head: the run (every layer's attn_probs through captureTaps) and its SVG.
// No Node module: the live page (src/teach/html/live.ts) recomputes and redraws it in the browser.

import { usesLongFactors } from '../../../layers/rotary.js';
import type { Phi3Config } from '../../model/config.js';
import type { ForwardOptions, Phi3Model } from '../../model/model.js';
import { captureTaps } from '../../capture/host.js';
import { heatmap, shadeLegend, svg, text } from './svg.js';

// ---- 2. attention per head ----

export interface AttentionRun {
  ids: number[];
  tokens: string[];
  long: boolean;
  /** [layer][head] -> T x T probabilities, row = query. */
  probs: Float32Array[][];
}

/** Runs the model on one prompt (with `opts.hooks` if given) and keeps attn_probs of every layer and head. */
export function attentionRun(model: Phi3Model, ids: number[], tokens: string[], opts: ForwardOptions = {}): AttentionRun {
  const cfg = model.config;
  const T = ids.length;
  const names = Array.from({ length: cfg.numLayers }, (_, l) => `layers.${l}.attn_probs` as const);
  const got = captureTaps(model, { inputIds: Int32Array.from(ids), batch: 1, seq: T }, names, opts);
  const probs = names.map((n) => {
    const data = got.get(n)!.data;
    return Array.from({ length: cfg.numHeads }, (_, h) => data.slice(h * T * T, (h + 1) * T * T));
  });
  return { ids, tokens, long: usesLongFactors(cfg.rope, T - 1), probs };
}

export function attentionFigure(run: AttentionRun, cfg: Phi3Config, source: string, command: string): string {
  const T = run.ids.length;
  const L = cfg.numLayers;
  const nh = cfg.numHeads;
  const cell = Math.max(4, Math.floor(200 / T));
  const side = cell * T;
  const gap = 28;
  const left = 60;
  const top = 94;
  const W = left + nh * (side + gap) + 10;
  const H = top + L * (side + gap + 16) + 70;
  const out: string[] = [];
  const set = run.long ? `long factors: positions 0..${T - 1} pass the original context ${cfg.rope.originalMaxPositions}` : `short factors: positions 0..${T - 1} fit the original context ${cfg.rope.originalMaxPositions}`;
  out.push(text(10, 18, `Attention probabilities per head, ${source}, ${T} tokens`, 'font-weight="bold"'));
  out.push(text(10, 36, `LongRoPE ${set}`)); // its own line: on the title's it ran past the figure's width
  out.push(text(10, 54, `prompt: ${run.tokens.join(' ')}`, 'font-family="monospace"'));
  out.push(text(10, 72, 'row = query position (down), column = key position (right); each row sums to 1; above the diagonal is masked (causal)'));
  for (let l = 0; l < L; l++) {
    const y0 = top + l * (side + gap + 16);
    out.push(text(8, y0 + side / 2, `layer ${l}`));
    for (let h = 0; h < nh; h++) {
      const x0 = left + h * (side + gap);
      const kv = Math.floor(h / (nh / cfg.numKvHeads));
      out.push(text(x0, y0 - 4, `head ${h} (kv ${kv})`));
      const p = run.probs[l][h];
      out.push(...heatmap(x0, y0, cell, T, T, (i, j) => p[i * T + j], `layer ${l} head ${h}`));
    }
  }
  out.push(...shadeLegend(left, H - 46, 'probability'));
  out.push(text(left + 260, H - 38, command, 'fill="#555" font-family="monospace"'));
  return svg(W, H, `Attention per head, ${T} tokens`, out, run.long ? 'attention-long' : 'attention-short');
}
