// What a candidate's rotary embedding did, solved for from its own queries before and after it.
// A rotation turns each pair of dims (a, b) of a query by an angle p * f_j (p the token's position,
// f_j the pair's frequency) and scales it by the attention scaling: as complex numbers,
// y = s e^{i p f_j} x. From the candidate's qkv (x) and q_rot (y) we read off, in this order:
//   the rotary dims      the dims where q_rot differs from qkv (the rest pass through);
//   the pairing          rotate-half pairs (i, i + r/2), as transformers, or interleaved (2i, 2i+1),
//                        as GPT-J and ggml's "normal" rope: the right one makes y / x the same
//                        complex factor for every head of a token, the wrong one does not;
//   the frequencies      f_j, the median turn of pair j from one token to the next (most steps
//                        are +1 position even in a buggy runtime), then rope_theta and the factor
//                        set from f_j = 1 / (factor_j * theta^(2j/r)) by least squares in log space;
//   each token's position  unwrapped from the slowest pair (unambiguous) to the fastest (precise).
// Everything is checked at the end: the fitted rotation applied to qkv must reproduce q_rot.

import { type RopeConfig, cosSin, inverseFrequencies } from '../../../layers/rotary.js';
import type { Numeric } from '../../oracle/metrics.js';
import { relL2 } from '../../oracle/metrics.js';

export type FactorSet = 'short' | 'long' | 'none';
export type Pairing = 'rotate-half' | 'interleaved';

export interface RotaryFit {
  /** Leading dims of each head that the candidate rotates. */
  rotaryDims: number;
  pairing: Pairing;
  /** The factor set whose frequencies fit best, and the rope_theta fitted with it. */
  set: FactorSet;
  theta: number;
  /** The scale of the rotated pairs (LongRoPE's attention scaling), median over pairs and tokens. */
  scaling: number;
  /** The position each token [B * T] was rotated at (null where no integer position fits). */
  positions: (number | null)[];
  /** rel L2 of q_rot against qkv rotated with everything above: the fit is trusted when <= 1e-3. */
  relL2: number;
  /** The measured frequency of each pair, when no factor set and theta make them (then `set` and `theta` are only the nearest). */
  frequencies?: number[];
}

/** Query head h of token (b, t) starts at this offset of qkv [B, T, W]. */
const qOff = (b: number, t: number, h: number, T: number, W: number, d: number) => (b * T + t) * W + h * d;

/** The pairs of a pairing over the first r dims. */
function pairs(p: Pairing, r: number): [number, number][] {
  return Array.from({ length: r / 2 }, (_, j): [number, number] => (p === 'rotate-half' ? [j, j + r / 2] : [2 * j, 2 * j + 1]));
}

const wrap = (a: number) => a - 2 * Math.PI * Math.round(a / (2 * Math.PI)); // into [-pi, pi]

function median(xs: number[]): number {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : NaN;
}

/** qkv [B,T,W] rotated with the given per-token positions, frequencies and pairing: q [B,nh,T,d]. */
export function rotateWith(qkv: Numeric, shape: { B: number; T: number; W: number; nh: number; d: number }, pairing: Pairing,
  inv: Float32Array, positions: ArrayLike<number>, scaling: number): Float64Array {
  const { B, T, W, nh, d } = shape;
  const r = 2 * inv.length;
  const out = new Float64Array(B * nh * T * d);
  const ps = pairs(pairing, r);
  for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) {
    const { cos, sin } = cosSin(inv, Int32Array.of(positions[b * T + t]), scaling);
    for (let h = 0; h < nh; h++) {
      const src = qOff(b, t, h, T, W, d);
      const dst = ((b * nh + h) * T + t) * d;
      for (let i = r; i < d; i++) out[dst + i] = qkv[src + i];
      ps.forEach(([ia, ib], j) => {
        const xa = qkv[src + ia];
        const xb = qkv[src + ib];
        out[dst + ia] = Math.fround(Math.fround(xa * cos[j]) - Math.fround(xb * sin[j]));
        out[dst + ib] = Math.fround(Math.fround(xb * cos[j]) + Math.fround(xa * sin[j]));
      });
    }
  }
  return out;
}

/** The frequencies of one factor set at a given theta (float32, as transformers computes them). */
function frequencies(rope: RopeConfig, set: FactorSet, theta: number, r: number): Float32Array {
  const base: RopeConfig = { ...rope, theta, rotaryDim: r };
  if (set === 'none' || rope.type !== 'longrope') return inverseFrequencies({ ...base, type: 'default' }, false);
  return inverseFrequencies(base, set === 'long');
}

/**
 * Fits the candidate's rotation from qkv [B,T,W] and q_rot [B,nh,T,d]; null when the shapes do not
 * line up or there is too little to fit (one token, or no rotated dims).
 */
export function fitRotary(rope: RopeConfig, qkv: { shape: number[]; data: Numeric }, qRot: { shape: number[]; data: Numeric },
  expectedSet: FactorSet = 'short'): RotaryFit | null {
  if (qRot.shape.length !== 4 || qkv.shape.length !== 3) return null;
  const [B, nh, T, d] = qRot.shape;
  const W = qkv.shape[2];
  if (qkv.shape[0] !== B || qkv.shape[1] !== T || W < nh * d) return null;
  const x = qkv.data;
  const y = qRot.data;
  const yAt = (b: number, h: number, t: number, i: number) => y[((b * nh + h) * T + t) * d + i];
  const xAt = (b: number, h: number, t: number, i: number) => x[qOff(b, t, h, T, W, d) + i];

  // the rotary dims: the last dim that does not pass through, rounded up to a pair
  let r = 0;
  for (let i = 0; i < d; i++) {
    let diff = 0;
    let norm = 0;
    for (let b = 0; b < B; b++) for (let h = 0; h < nh; h++) for (let t = 0; t < T; t++) {
      diff += (yAt(b, h, t, i) - xAt(b, h, t, i)) ** 2;
      norm += xAt(b, h, t, i) ** 2;
    }
    if (diff > 1e-12 * norm) r = i + 1;
  }
  r += r % 2;
  if (r === 0) return null;

  // per pairing: the complex factor z = y / x of every (token, pair), by least squares over heads
  const factor = (p: Pairing) => {
    const ps = pairs(p, r);
    const z = new Float64Array(B * T * ps.length * 2);
    let res = 0;
    let tot = 0;
    for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) ps.forEach(([ia, ib], j) => {
      let nr = 0;
      let ni = 0;
      let den = 0;
      for (let h = 0; h < nh; h++) {
        const xa = xAt(b, h, t, ia), xb = xAt(b, h, t, ib), ya = yAt(b, h, t, ia), yb = yAt(b, h, t, ib);
        nr += ya * xa + yb * xb; // y * conj(x)
        ni += yb * xa - ya * xb;
        den += xa * xa + xb * xb;
      }
      const zr = den > 0 ? nr / den : 1;
      const zi = den > 0 ? ni / den : 0;
      const k = ((b * T + t) * ps.length + j) * 2;
      z[k] = zr;
      z[k + 1] = zi;
      for (let h = 0; h < nh; h++) {
        const xa = xAt(b, h, t, ia), xb = xAt(b, h, t, ib), ya = yAt(b, h, t, ia), yb = yAt(b, h, t, ib);
        res += (ya - (zr * xa - zi * xb)) ** 2 + (yb - (zr * xb + zi * xa)) ** 2;
        tot += ya * ya + yb * yb;
      }
    });
    return { p, z, res: tot > 0 ? res / tot : 0 };
  };
  const half = factor('rotate-half');
  const inter = r >= 2 ? factor('interleaved') : half;
  const { p: pairing, z } = inter.res < half.res ? inter : half;
  const J = r / 2;
  const angle = (b: number, t: number, j: number) => {
    const k = ((b * T + t) * J + j) * 2;
    return Math.atan2(z[k + 1], z[k]);
  };
  const scaling = median(Array.from({ length: B * T * J }, (_, i) => Math.hypot(z[2 * i], z[2 * i + 1])));

  // frequencies: the median turn per +1 step; theta and the set from them
  const f = Array.from({ length: J }, (_, j) => {
    const steps: number[] = [];
    for (let b = 0; b < B; b++) for (let t = 1; t < T; t++) steps.push(wrap(angle(b, t, j) - angle(b, t - 1, j)));
    return median(steps);
  });
  const sets: FactorSet[] = rope.type === 'longrope' && rope.shortFactor?.length === J ? ['short', 'long', 'none'] : ['none'];
  // with no +1 steps to read frequencies from (one token, every token at one position) the config's stand
  let best: { set: FactorSet; theta: number; err: number } = { set: sets.includes(expectedSet) ? expectedSet : sets[0], theta: rope.theta, err: Infinity };
  if (T > 1 && f[0] > 1e-3 && f.every((v) => v > 0)) {
    for (const set of sets) {
      const phi = set === 'none' ? null : set === 'long' ? rope.longFactor! : rope.shortFactor!;
      // log f_j = -log phi_j - (2j / r) log theta
      let sxy = 0;
      let sxx = 0;
      const ys = f.map((v, j) => -Math.log(v) - Math.log(phi ? phi[j] : 1));
      ys.forEach((yv, j) => {
        sxy += ((2 * j) / r) * yv;
        sxx += ((2 * j) / r) ** 2;
      });
      const logTheta = sxx > 0 ? sxy / sxx : Math.log(rope.theta);
      const err = ys.reduce((s, yv, j) => s + (yv - ((2 * j) / r) * logTheta) ** 2, 0);
      if (err < best.err) best = { set, theta: Math.exp(logTheta), err };
    }
  }
  // a theta within 0.1% of the config's is the config's (the fit carries float32 noise)
  const theta = Math.abs(best.theta / rope.theta - 1) < 1e-3 ? rope.theta : Number(best.theta.toPrecision(3));
  const fromConfig = frequencies(rope, best.set, theta, r);
  const attempt = (inv: Float32Array) => {
    const positions = positionsFor(inv);
    const err = relL2(rotateWith(x, { B, T, W, nh, d }, pairing, inv, positions.map((p) => p ?? 0), scaling), y);
    return { positions, err };
  };
  // positions: from the slowest pair (one turn spans the most positions) to the fastest
  const positionsFor = (inv: Float32Array): (number | null)[] => {
    const positions: (number | null)[] = [];
    for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) {
      const slow = angle(b, t, J - 1);
      let p = (slow < -Math.PI / 4 ? slow + 2 * Math.PI : slow) / inv[J - 1];
      for (let j = J - 2; j >= 0; j--) {
        const a = angle(b, t, j);
        p = (a + 2 * Math.PI * Math.round((p * inv[j] - a) / (2 * Math.PI))) / inv[j];
      }
      const n = Math.round(p);
      let miss = 0;
      for (let j = 0; j < J; j++) miss = Math.max(miss, Math.abs(wrap(angle(b, t, j) - Math.fround(n * inv[j]))));
      positions.push(Number.isFinite(n) && miss < 1e-2 ? n + 0 : null); // + 0: no -0
    }
    return positions;
  };
  let found = attempt(fromConfig);
  let custom = false;
  // frequencies no factor set and theta make (a config of another model): the measured ones, as they are
  if (found.err > 1e-3 && T > 1 && f.every((v) => v > 0)) {
    const measured = attempt(Float32Array.from(f));
    if (measured.err < found.err) {
      found = measured;
      custom = true;
    }
  }
  return { rotaryDims: r, pairing, set: best.set, theta, scaling, positions: found.positions, relL2: found.err, ...(custom ? { frequencies: f } : {}) };
}
