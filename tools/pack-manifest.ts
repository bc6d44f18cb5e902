// The package.json that goes into the tarball, without the `prepare` script.
//
// `prepare` builds dist/ after `npm ci` in a clone (and for a git dependency); an installed
// tarball already holds dist/, and npm never runs a registry or tarball package's `prepare`.
// npm 11 still lists any `prepare` among the "install scripts not yet covered by allowScripts"
// of every app that installs the package, so the packed manifest leaves it out:
//
//   prepack:  node dist/tools/pack-manifest.js strip     package.json saved, then rewritten without it
//   postpack: node dist/tools/pack-manifest.js restore   the saved bytes put back
//
// A pack that dies between the two leaves the saved copy; the next strip or restore puts it back first.

import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';

const MANIFEST = 'package.json';
const SAVED = '.package.json.packing'; // ignored by git, not in the package's "files"

function restore(): void {
  if (existsSync(SAVED)) renameSync(SAVED, MANIFEST);
}

function strip(): void {
  restore();
  const text = readFileSync(MANIFEST, 'utf8');
  const pkg = JSON.parse(text) as { scripts?: Record<string, string> };
  if (!pkg.scripts?.prepare) return;
  writeFileSync(SAVED, text);
  delete pkg.scripts.prepare;
  writeFileSync(MANIFEST, JSON.stringify(pkg, null, 2) + '\n');
}

const verb = process.argv[2];
if (verb === 'strip') strip();
else if (verb === 'restore') restore();
else {
  console.error('usage: node dist/tools/pack-manifest.js strip|restore (run from the package root)');
  process.exit(2);
}
