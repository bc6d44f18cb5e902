// The reference's activations live in buffers kept for the whole pass, one per role (the hidden
// state, q, the attention probabilities, ...), reused by every layer, instead of new arrays per
// layer. Why: a new array is fresh memory, and on the development machine (a virtual machine)
// faulting fresh pages in runs at about 0.33 GB/s against 20 GB/s for memory already touched
// (docs/performance.md). A 512-token full-size pass made about 9 GB of new arrays, some 25 s of
// page faults on the main thread while the product threads waited. Taps are handed out in these
// buffers, which is why a tap's `data` is valid only during the call (ReferenceTap).

export class Scratch {
  private readonly bufs = new Map<string, Float64Array>();

  /** The buffer for `role`, `n` values long (grown, never shrunk; its contents are whatever was last written). */
  get(role: string, n: number): Float64Array {
    let b = this.bufs.get(role);
    if (b === undefined || b.length < n) this.bufs.set(role, (b = new Float64Array(n)));
    return b.subarray(0, n);
  }
}
