// Compare two dump files: open them, read their provenance and the reference's rotary config,
// apply a --map (or the built-in one the candidate's names call for), and compare (compare.ts).

import { SafetensorsFile, isFloatDType } from '../../weights/index.js';
import type { RopeConfig } from '../../layers/rotary.js';
import { loadConfig } from '../model/config.js';
import type { Entries } from './entries.js';
import type { CompareOptions, DumpMeta } from './report.js';
import { compare, compareQuantized } from './compare.js';
import { type MapSpec, applyMap } from './map.js';
import { type RowSelection, cutToRows } from './cut-rows.js';
import { type Comparison, mapSides } from './tensors.js';

/** The rotary config and sliding window of the checkpoint our reference dump names, when it can still be read. */
function referenceConfig(f: SafetensorsFile): { rope?: RopeConfig; slidingWindow?: number | null } {
  const ckpt = f.metadata.checkpoint;
  if (f.metadata.format !== 'phi4-ts.dump' || !ckpt) return {};
  try {
    const c = loadConfig(ckpt);
    return { rope: c.rope, slidingWindow: c.slidingWindow };
  } catch {
    return {}; // moved or deleted: compare without the fingerprints
  }
}

/** input_ids' T (the length of the token axis) when the dump holds input_ids. */
function seqLength(f: SafetensorsFile): number | undefined {
  return f.has('input_ids') ? f.info('input_ids').shape.at(-1) : undefined;
}

/** The rows a selected dump kept (its `selection` metadata: rows [start, end) of a T-token sequence) when fewer than T; else null. */
function selectedRows(f: SafetensorsFile, T: number | undefined): RowSelection | null {
  try {
    const rows = JSON.parse(f.metadata.selection ?? 'null')?.rows;
    if (!Array.isArray(rows) || T === undefined) return null;
    const [start, end] = rows;
    if (Number.isInteger(start) && Number.isInteger(end) && start >= 0 && start < end && end <= T && end - start < T) return { start, end, T };
  } catch {
    // no usable selection: the rows are the whole sequence
  }
  return null;
}

/**
 * One side selected rows, the other holds all of them (same T): the whole side is cut to those rows
 * (./cut-rows.ts), so both hold the same positions; its label says so.
 */
function alignRows(
  a: Entries, b: Entries, rows: { ref: RowSelection | null; cand: RowSelection | null }, T: { ref?: number; cand?: number },
  labels: { reference: string; candidate: string },
): { a: Entries; b: Entries } {
  const cutSide = (whole: Entries, selected: Entries, r: RowSelection, side: keyof typeof labels): Entries => {
    const { entries, cut } = cutToRows(whole, selected, r);
    if (cut.length) labels[side] += `; rows ${r.start}-${r.end - 1} of its ${r.T} compared (${cut.length} tensors cut to the other dump's selection)`;
    return entries;
  };
  if (rows.ref && !rows.cand && T.cand === rows.ref.T) return { a, b: cutSide(b, a, rows.ref, 'candidate') };
  if (rows.cand && !rows.ref && T.ref === rows.cand.T) return { a: cutSide(a, b, rows.cand, 'reference'), b };
  return { a, b };
}

/** A dump's provenance for the report header: its path, and who wrote it when it is ours. */
function describe(path: string, f: SafetensorsFile): string {
  const m = f.metadata;
  if (m.format !== 'phi4-ts.dump') return path;
  return m.producer && !m.project_version ? `${path} (${m.producer}: ${m.backend})` : `${path} (phi4-ts ${m.project_version}, backend ${m.backend})`;
}

export type FileComparison = Comparison;

/**
 * Opens both files (bad or missing files are WeightsErrors naming them), maps and compares.
 * `map` undefined: a built-in map is applied when the candidate's names call for one (src/compare/maps/);
 * null: no map.
 */
export function compareFiles(refPath: string, candPath: string, opts: CompareOptions & { map?: MapSpec | null; weightsReference?: string } = {}): FileComparison {
  const ref = SafetensorsFile.open(refPath);
  const quant = opts.weightsReference !== undefined ? SafetensorsFile.open(opts.weightsReference) : null;
  try {
    const cand = SafetensorsFile.open(candPath);
    try {
      const mapped = mapSides(fileEntries(ref), fileEntries(cand), opts.map);
      const { map, note } = mapped;
      let [a, b] = [mapped.ref, mapped.cand];
      const meta = (f: SafetensorsFile): DumpMeta => ({ checkpoint: f.metadata.checkpoint, config_hash: f.metadata.config_hash, n_ctx: f.metadata.n_ctx });
      const metadata = { reference: meta(ref), candidate: meta(cand) };
      const labels = { reference: describe(refPath, ref), candidate: describe(candPath, cand) + note };
      const T = { ref: seqLength(ref), cand: seqLength(cand) };
      const selected = { ref: selectedRows(ref, T.ref), cand: selectedRows(cand, T.cand) };
      ({ a, b } = alignRows(a, b, selected, T, labels));
      // where the rotary fit's positions start, and the sequence length that picks the factor set
      const rows = selected.ref ?? selected.cand;
      opts = { ...referenceConfig(ref), ...(rows ? { rows: { first: rows.start, seqLen: rows.T } } : {}), ...opts };
      if (quant) {
        let q = fileEntries(quant);
        if (map && map.applyTo !== 'candidate') q = applyMap(q, map, 'reference');
        labels.reference += `; quantized-weights reference: ${describe(opts.weightsReference!, quant)}`;
        return { report: compareQuantized(a, q, b, { ...opts, metadata: { reference: meta(quant), candidate: metadata.candidate } }), labels, map };
      }
      return { report: compare(a, b, { ...opts, metadata }), labels, map };
    } finally {
      cand.close();
    }
  } finally {
    ref.close();
    quant?.close();
  }
}

/** The tensors of an open safetensors file as entries (floats read as float32, F64 as float64). */
export function fileEntries(f: SafetensorsFile): Entries {
  const out: Entries = new Map();
  const ops = recordedOps(f);
  for (const t of f.tensors()) {
    const int = !isFloatDType(t.dtype);
    out.set(t.name, {
      shape: t.shape,
      int,
      read: () => (int ? f.readInt32(t.name) : t.dtype === 'F64' ? f.readFloat64(t.name) : f.readFloat32(t.name)),
      ...(typeof ops[t.name] === 'string' ? { op: ops[t.name] as string } : {}),
    });
  }
  return out;
}

/** The op that made each tensor, where a capture tool records them (metadata `ops`: {"name": "ROPE"}); {} otherwise. */
function recordedOps(f: SafetensorsFile): Record<string, unknown> {
  const text = f.metadata.ops;
  if (!text) return {};
  try {
    const o: unknown = JSON.parse(text);
    return typeof o === 'object' && o !== null && !Array.isArray(o) ? (o as Record<string, unknown>) : {};
  } catch {
    return {}; // not ours to refuse: without ops the names and the graph order still tell
  }
}
