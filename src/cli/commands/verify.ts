import { UsageError, parseArgs, str } from '../args.js';
import { FORWARD_CASES } from '../../oracle/golden.js';
import { verify } from '../../oracle/verify.js';
import { type Command, start } from './common.js';

export const verifyCommand: Command = {
  usage: `phi4 verify [--case NAME] [--backend NAME]
      run the bundled golden cases and print every block's agreement with transformers`,
  async run(argv) {
    const p = parseArgs(argv, ['case', 'backend']);
    if (p.positional.length > 0) throw new UsageError(`verify takes no positional argument (got "${p.positional[0]}")`);
    const only = str(p, 'case');
    const cases = only ? FORWARD_CASES.filter((c) => c.name === only) : FORWARD_CASES;
    if (cases.length === 0) throw new UsageError(`--case: unknown case "${only}" (one of ${FORWARD_CASES.map((c) => c.name).join(', ')})`);
    await start(str(p, 'backend'));
    return verify(cases) ? 0 : 1;
  },
};
