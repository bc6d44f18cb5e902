// node dist/tools/assemble-reference.js: assembles the float64 reference's own WebAssembly text
// (src/oracle/reference/gemm.wat) with wabt into gemm-wasm.ts, which the reference loads with no
// file access and no assembler at run time. test/reference-speed.test.ts fails when they disagree.
// (The model's kernels have their own, tools/assemble-kernels.ts; the reference shares none of
// their code, only the assembler.)

import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { assemble, moduleSource } from './assemble-kernels.js';

export const REFERENCE_WAT = fileURLToPath(new URL('../../src/oracle/reference/gemm.wat', import.meta.url));
export const REFERENCE_WASM_TS = fileURLToPath(new URL('../../src/oracle/reference/gemm-wasm.ts', import.meta.url));

/** The generated source of gemm-wasm.ts, as this tool writes it. */
export async function referenceKernelSource(): Promise<string> {
  return moduleSource('gemm', await assemble(REFERENCE_WAT)).replace('`npm run kernels`', '`node dist/tools/assemble-reference.js`');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(REFERENCE_WASM_TS, await referenceKernelSource());
  console.error(`wrote ${REFERENCE_WASM_TS}`);
}
