#!/usr/bin/env node
// The phi4 command: the compiled CLI (npm ci builds dist/ through the prepare script).
import "../dist/src/cli/cli.js";
