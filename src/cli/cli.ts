#!/usr/bin/env node
// The `phi4` command line: looks the subcommand up in src/cli/commands/ and runs it. Errors are one
// line on stderr and a non-zero exit: 2 for bad input, 1 for a failed check.

import { UsageError, didYouMean } from './args.js';
import { COMMANDS } from './commands/index.js';
import { VERSION } from '../version.js';
import { errorLine } from '../safety/error-text.js';
import { exitCodeOf } from '../errors.js';
import { bundledNames } from '../checkpoint/bundled.js';

const USAGE = `phi4-ts ${VERSION}: a reference implementation of Phi-4-mini (Phi3ForCausalLM) in TypeScript

usage:
${Object.values(COMMANDS).map((c) => '  ' + c.usage).join('\n')}
  phi4 <command> --help     one command's usage
  phi4 --version            the version

a checkpoint is a directory with config.json and *.safetensors, a .gguf file, a Hugging Face repo id in the
local cache (microsoft/Phi-4-mini-instruct), or the name of one bundled with the package:
  ${bundledNames().join(', ')}

backends: tensorflow (when @tensorflow/tfjs-node loads), wasm (default), cpu; or set PHI4_BACKEND`;


async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    console.log(USAGE);
    return cmd === undefined ? 2 : 0;
  }
  if (cmd === '--version' || cmd === '-v' || cmd === 'version') {
    console.log(VERSION);
    return 0;
  }
  const command = Object.hasOwn(COMMANDS, cmd) ? COMMANDS[cmd] : undefined;
  if (!command) throw new UsageError(`unknown command "${cmd}"${didYouMean(cmd, Object.keys(COMMANDS)) || ' (try phi4 --help)'}`);
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(`usage:\n  ${command.usage}`);
    return 0;
  }
  return command.run(rest);
}

/**
 * Ends the process with `code` once everything written to stdout and stderr has been handed to the
 * OS: process.exit right after console.log drops what a pipe has not yet taken (a --json report
 * piped to a slow reader arrived cut at 64 KiB). A write's callback runs after every earlier
 * write on that stream, so an empty write on each marks the end.
 */
function exitWhenFlushed(code: number): void {
  process.exitCode = code;
  let pending = 2;
  const done = () => {
    if (--pending === 0) process.exit(code);
  };
  for (const stream of [process.stdout, process.stderr]) {
    if (stream.destroyed || stream.writableEnded) done();
    else stream.write('', done);
  }
}

main(process.argv.slice(2)).then(
  (code) => exitWhenFlushed(code),
  (err: Error) => {
    // a refusal (src/errors.ts) is one line and its exit code (2); anything else is a bug: exit 1
    const code = exitCodeOf(err);
    const known = code !== 1;
    const text = known ? err.message : String(err?.stack ?? err).split('\n')[0]!;
    console.error(`phi4: ${errorLine(text)}`);
    if (!known && process.env.PHI4_DEBUG) console.error(err.stack);
    exitWhenFlushed(code);
  },
);
