#!/usr/bin/env node
// Runs every compiled test file (dist/test/**/*.test.js) with node's test runner. Node 20's
// `--test` takes no glob, so the files are listed here. Store-level tests run on PGlite, and on
// PostgreSQL as well when DATABASE_URL is set. Extra arguments go to `node --test`, e.g.
// `npm test -- --test-name-pattern=dispatcher`.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';

function find(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...find(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

const files = find('dist/test');
if (files.length === 0) {
  console.error('no test files under dist/test: did the build run?');
  process.exit(1);
}
const concurrency = process.env.FLEETCAST_TEST_CONCURRENCY ?? String(Math.max(1, availableParallelism()));
console.log(`running ${files.length} test files on ${process.env.DATABASE_URL ? 'PGlite and PostgreSQL' : 'PGlite'}`);
const res = spawnSync(
  process.execPath,
  ['--test', `--test-concurrency=${concurrency}`, '--test-timeout=600000', ...process.argv.slice(2), ...files],
  { stdio: 'inherit' },
);
process.exit(res.status ?? 1);
