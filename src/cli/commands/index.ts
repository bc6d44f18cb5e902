// The subcommand table: one file per command in this folder, one line per command here.

import type { Command } from './common.js';
import { compareCommand } from './compare.js';
import { dumpCommand } from './dump.js';
import { memoryCommand } from './memory.js';
import { generateCommand } from './generate.js';
import { synthCommand } from './synth.js';
import { verifyCommand } from './verify.js';
import { walkthroughCommand } from './walkthrough.js';

export const COMMANDS: Record<string, Command> = {
  verify: verifyCommand,
  dump: dumpCommand,
  compare: compareCommand,
  memory: memoryCommand,
  walkthrough: walkthroughCommand,
  generate: generateCommand,
  synth: synthCommand,
};
