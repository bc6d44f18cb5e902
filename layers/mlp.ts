// SwiGLU MLP with the fused projection of the Phi-3 checkpoints:
//
//   [gate | up] = x W_gate_up^T        W_gate_up: [2I, H], first I rows gate, next I rows up
//   act         = silu(gate) * up      silu(g) = g * sigmoid(g)
//   out         = act W_down^T         W_down: [H, I]

import * as tf from '@tensorflow/tfjs-core';
import { type LinearWeight, linear } from './linear.js';
import { type LayerTap, noTap } from './tap.js';

export interface MlpWeights {
  gateUpProj: LinearWeight; // mlp.gate_up_proj.weight [2I, H]
  downProj: LinearWeight; // mlp.down_proj.weight [H, I]
}

/** x: [batch, seq, hidden] -> [batch, seq, hidden]. Taps: gate_up, mlp_act, mlp_out. */
export function mlp(x: tf.Tensor3D, w: MlpWeights, tap: LayerTap = noTap): tf.Tensor3D {
  return tf.tidy(() => {
    const gateUp = tap('gate_up', linear(x, w.gateUpProj)); // [batch, seq, 2I]
    const inter = gateUp.shape[2] / 2;
    const [gate, up] = tf.split(gateUp, [inter, inter], 2) as tf.Tensor3D[]; // [batch, seq, I] each
    const act = tap('mlp_act', tf.mul(tf.mul(gate, tf.sigmoid(gate)), up) as tf.Tensor3D); // silu(gate) * up
    return tap('mlp_out', linear(act, w.downProj)); // [batch, seq, hidden]
  });
}
