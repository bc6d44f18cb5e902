// The report as `phi4 compare` prints it: the header, one table row per tap, the names only one
// side has, the blame and quantization tables, and the verdict line.

import type { CompareReport, TapResult } from './report.js';
import { detail } from './diagnosis.js';
import { fmt, lpad, pad } from './format.js';

/** The report as the lines `phi4 compare` prints. */
export function formatReport(r: CompareReport, labels: { reference: string; candidate: string }): string {
  const out: string[] = [];
  out.push(`reference: ${labels.reference}`);
  out.push(`candidate: ${labels.candidate}`);
  const b = r.budget;
  out.push((b
    ? `tolerance: per tap, its ${b.rounding} budget: ${b.k} x the float64 reference's own error with ${b.rounding} storage emulated (on ${b.checkpoint}, the reference dump's inputs), at least ${fmt(b.floor)}; beside it the constant preset ${r.preset} (rel L2 <= ${r.tolerance.toExponential(1)})`
    : `tolerance: rel L2 <= ${r.tolerance.toExponential(1)} on every tap (${r.preset === 'custom' ? '--rtol' : `preset ${r.preset}`})`) +
    (r.maskedPositions ? `; padded batch: ${r.maskedPositions.kept} of ${r.maskedPositions.total} positions compared (attention_mask = 1)` : ''));
  const w = Math.max(24, ...r.taps.map((t) => t.name.length + 2));
  // with --budget: the tap's budget, and whether the constant preset alone would pass it
  const budgetCols = (t: TapResult) => (b ? `${lpad(t.budget === undefined ? 'preset' : fmt(t.budget), 9)}${lpad(t.presetOk ? 'ok' : 'over', 8)}` : '');
  out.push(`  ${pad('tap', w)}${pad('shape', 16)}${lpad('rel L2', 9)}${lpad('max|d|', 9)}${lpad('cosine', 12)}${b ? `${lpad('budget', 9)}${lpad('preset', 8)}` : ''}  ok`);
  for (const t of r.taps) {
    if (t.finding) {
      out.push(`  ${pad(t.name, w)}${pad(t.shape.join('x'), 16)}  CANNOT COMPARE: ${t.finding}`);
      continue;
    }
    let line = `  ${pad(t.name, w)}${pad(t.shape.join('x'), 16)}${lpad(fmt(t.relL2), 9)}${lpad(fmt(t.maxAbs), 9)}${lpad(t.cosine.toFixed(8), 12)}${budgetCols(t)}  ${t.ok ? 'ok' : 'DIVERGES'}`;
    if (t.logits) line += `   top-1 ${t.logits.top1}/${t.logits.positions}, KL mean ${fmt(t.logits.klMean)} max ${fmt(t.logits.klMax)}`;
    if (!t.ok) {
      const d = detail(t, t.budget ?? r.tolerance);
      if (d) line += `   ${d}`;
    }
    out.push(line);
  }
  const list = (names: string[]) => (names.length <= 10 ? names.join(', ') : `${names.slice(0, 8).join(', ')}, ... (${names.length - 8} more; --json lists all)`);
  if (r.onlyReference.length) out.push(`only in reference (${r.onlyReference.length}): ${list(r.onlyReference)}`);
  if (r.onlyCandidate.length) {
    const s = r.onlyCandidateSummary;
    const shown = s.slice(0, 8).map((p) => (p.count > 1 ? `${p.pattern} (x${p.count})` : p.pattern)).join(', ');
    out.push(`only in candidate (${r.onlyCandidate.length} tensors matching no tap, ${s.length} pattern${s.length > 1 ? 's' : ''}): ${shown}${s.length > 8 ? `, ... (--json lists all)` : ''}`);
  }
  if (r.metadata && r.metadata.sameCheckpoint === false && r.metadata.sameConfig !== false) {
    const files = `(reference ${r.metadata.reference.checkpoint}, candidate ${r.metadata.candidate.checkpoint})`;
    out.push(r.metadata.sameConfig ? `note: different checkpoint files with the same config ${files}` : `note: different checkpoint files ${files}; a dump without config_hash, so the configs were not compared`);
  }
  if (r.blame) {
    const shown = r.blame.taps.filter((t) => !(t.local <= r.blame!.threshold));
    out.push(`per-step blame: each step re-run on the candidate's own input; the ${shown.length} of ${r.blame.taps.length} steps whose local error is over ${fmt(r.blame.threshold)}`);
    if (shown.length) out.push(`  ${pad('tap', w)}${lpad('accumulated', 12)}${lpad('local', 12)}`);
    for (const t of shown.slice(0, 16)) out.push(`  ${pad(t.name, w)}${lpad(fmt(t.accumulated), 12)}${lpad(fmt(t.local), 12)}${t.name === r.blame.blamed ? '  <- blamed' : ''}`);
  }
  if (r.quantization) {
    out.push(`quantization (--weights-reference): rel L2 of the candidate from the float reference, from the reference on the same quantized weights (the verdict), and the quantization's own error`);
    out.push(`  ${pad('tap', w)}${lpad('from float', 12)}${lpad('from quant', 12)}${lpad('quant err', 12)}  explained by`);
    for (const t of r.quantization.taps) out.push(`  ${pad(t.name, w)}${lpad(fmt(t.fromFloat), 12)}${lpad(fmt(t.fromQuantized), 12)}${lpad(fmt(t.quantizationError), 12)}  ${t.explainedBy}`);
  }
  out.push(`${r.ok ? 'PASS' : 'FAIL'}: ${r.diagnosis}`);
  return out.join('\n');
}
