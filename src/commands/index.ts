// The subcommand table: one file per command in this folder, one line per command here.

import type { Command } from './common.js';
import { dumpCommand } from './dump.js';
import { synthCommand } from './synth.js';
import { verifyCommand } from './verify.js';

export const COMMANDS: Record<string, Command> = {
  verify: verifyCommand,
  dump: dumpCommand,
  synth: synthCommand,
};
