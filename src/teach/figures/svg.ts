// The small SVG vocabulary every figure is drawn with (src/teach/figures/figures.ts, attention.ts):
// text, lines, a shaded heatmap, a legend, the <svg> wrapper. Plain strings, no DOM and no Node
// module, so the live page (src/teach/html/live.ts) draws with the same code as the docs.

const FONT = 'font-family="sans-serif" font-size="11"';
export const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
export const r1 = (x: number) => Number(x.toFixed(1));

// Average advance of a character at font-size 11 in a wide sans-serif (DejaVu Sans, a common
// default on Linux): about 0.55 em, 0.6 em bold or monospace. Each figure is widened to its longest
// left-aligned line at that estimate, so that no browser clips it (the attention-long title was).
function textEnd(el: string): number {
  const m = /^<text x="([\d.]+)"[^>]*>([^<]*)<\/text>$/.exec(el);
  if (!m || /text-anchor="(middle|end)"/.test(el)) return 0;
  const wide = / font-weight="bold"| font-family="monospace"/.test(el);
  return Number(m[1]) + m[2]!.replace(/&[a-z]+;/g, '_').length * 11 * (wide ? 0.6 : 0.55);
}

export function svg(layoutWidth: number, height: number, title: string, body: string[], figId: string): string {
  const width = Math.max(layoutWidth, Math.ceil(Math.max(0, ...body.map(textEnd)) + 10));
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ${FONT} data-figure="${figId}">`,
    `<title>${esc(title)}</title>`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    ...body,
    '</svg>',
  ].join('\n') + '\n';
}

export const text = (x: number, y: number, s: string, extra = '') => `<text x="${r1(x)}" y="${r1(y)}"${extra ? ' ' + extra : ''}>${esc(s)}</text>`;
export const line = (x1: number, y1: number, x2: number, y2: number, extra = 'stroke="#000"') => `<line x1="${r1(x1)}" y1="${r1(y1)}" x2="${r1(x2)}" y2="${r1(y2)}" ${extra}/>`;

/**
 * A heatmap of values in [0, 1] as one <path> per shade (11 shades, 0.05 .. 1), so that a 41 x 41
 * map stays a few kilobytes; cells under 0.05 are left white. The cell element count of a map is
 * therefore its number of shades in use (class "cells").
 */
export function heatmap(x0: number, y0: number, cell: number, rows: number, cols: number, value: (i: number, j: number) => number, label: string): string[] {
  const shades = new Map<number, string[]>();
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      const v = value(i, j);
      if (!(v >= 0.05)) continue;
      const level = Math.min(10, Math.round(v * 10));
      const d = `M${j} ${i}h1v1h-1z`; // one unit cell; the group's scale makes it `cell` pixels
      if (!shades.has(level)) shades.set(level, []);
      shades.get(level)!.push(d);
    }
  }
  const out = [`<g transform="translate(${x0} ${y0}) scale(${cell})" data-map="${esc(label)}">`];
  out.push(`<rect width="${cols}" height="${rows}" fill="none" stroke="#999" stroke-width="${r1(1 / cell * 10) / 10}"/>`);
  for (const [level, ds] of [...shades].sort((a, b) => a[0] - b[0])) {
    out.push(`<path class="cells" fill="#08306b" fill-opacity="${Math.max(level, 1) / 10}" d="${ds.join('')}"/>`);
  }
  out.push('</g>');
  return out;
}

export function shadeLegend(x: number, y: number, what: string): string[] {
  const out = [text(x, y - 4, what)];
  for (let k = 1; k <= 10; k++) out.push(`<rect x="${x + (k - 1) * 14}" y="${y}" width="14" height="10" fill="#08306b" fill-opacity="${k / 10}"/>`);
  out.push(text(x, y + 22, '0.05'), text(x + 128, y + 22, '1'), text(x + 146, y + 9, '(white: < 0.05)'));
  return out;
}
