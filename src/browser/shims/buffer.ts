// The one `Buffer` use the browser build reaches: `Buffer.from(base64, 'base64')`, how the
// WebAssembly kernels (layers/kernels/*-wasm.ts) are decoded before they are compiled. The build
// (tools/build-browser.ts) injects this object where the code names the Node global.
export const Buffer = {
  from(text: string, encoding: string): Uint8Array {
    if (encoding !== 'base64') throw new Error(`phi4-ts/browser: Buffer.from(..., '${encoding}') is Node-only`);
    const bin = atob(text);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  },
};
