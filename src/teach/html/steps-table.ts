// The walkthrough page's table of steps (src/teach/steps.ts: one row per step, its shape, values
// and source lines). One copy for both places it is made: `phi4 walkthrough --html` writes it into
// the page (src/teach/html/page.ts), and the live page (src/teach/html/live.ts) remakes it from its
// own run whenever the ids, the model or a head switch change. No Node module.
//
// The source lines a step names come from reading the source files (codeText in
// src/teach/walkthrough.ts, Node); the page gets them resolved, keyed by codeKey.

import type { CodeRef, Walkthrough } from '../steps.js';
import { num, shapeText, statsText } from '../steps.js';

export const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** A code reference as a key of the page's table of resolved source lines. */
export const codeKey = (r: CodeRef) => `${r.file}|${r.from}|${r.to ?? ''}`;

/** The heading, the input ids, one table row per step (`tr[data-step=ID]`) and the top next tokens. */
export function stepsSection(w: Walkthrough, code: (ref: CodeRef) => string): string {
  const rows = w.steps.map((s, i) => `<tr data-step="${esc(s.id)}"><td>${i + 1}</td><td><code>${esc(s.tap ?? s.id)}</code><br>${esc(s.title)}</td><td><code>${esc(s.rule)}</code></td>`
    + `<td><code>${esc(s.layout)}</code><br>${esc(shapeText(s.shape))}</td><td>${s.stats ? esc(statsText(s.stats)) : ''}${s.note ? `<br>${esc(s.note)}` : ''}</td>`
    + `<td>${s.code.map((r) => `<code>${esc(code(r))}</code>`).join('<br>')}</td></tr>`).join('\n');
  return `<h2>The steps of layer ${w.layer}, prompt of ${w.inputIds.length} tokens</h2>
<p>Checkpoint <code>${esc(w.checkpoint)}</code>. input_ids: <code>${w.inputIds.join(' ')}</code>. Position 0 attends only to itself: the causal mask leaves it one key, so its probability is 1 and its attention output is its own value vector.</p>
<table><tr><th>#</th><th>tap</th><th>rule</th><th>shape</th><th>values</th><th>code</th></tr>
${rows}
</table>
<p>Top next tokens after the last position: ${w.top.map((t) => `${t.id} (p ${num(t.p)})`).join(', ')}.</p>
`;
}
