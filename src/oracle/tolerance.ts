// The golden rule's numbers (src/oracle/golden.ts applies them), in a module of their own with no
// Node import: compare's presets (src/compare/report.ts) start from F32_TOLERANCE, and compare
// runs in a page too (src/compare/tensors.ts, phi4-ts/browser), where golden.ts's file paths cannot load.

export const F32_TOLERANCE = 1e-5;
export const F64_FACTOR = 4;
export const F64_FLOOR = 1e-6;
