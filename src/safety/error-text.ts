// Error text that is safe to print: one line, bounded, with terminal control bytes escaped.
// A tensor name is whatever a file says it is: 99 million characters, or ESC sequences that
// would repaint the user's terminal. Every refusal the CLI prints goes through errorLine.

/** Longest error line printed; the rest is elided with a count. */
export const MAX_ERROR_CHARS = 1000;

// C0 controls (newline and tab included), DEL, C1 controls, line/paragraph separators and the
// bidirectional overrides that can make printed text read differently from what it is.
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

const escape = (c: string) => {
  const code = c.charCodeAt(0);
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
};

/** `text` as one printable line: its first `max` characters, escaped (at most 6 printed per character), then an elision count. */
export function errorLine(text: string, max = MAX_ERROR_CHARS): string {
  // Escape only the part that is shown: a 99 MB message costs no more than a short one.
  const shown = text.slice(0, max).replace(UNSAFE, escape);
  return text.length <= max ? shown : `${shown}... (${text.length - max} more characters)`;
}
