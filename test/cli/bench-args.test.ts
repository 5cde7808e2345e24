/**
 * The benchmarks' shared option parser: counts must be whole numbers, an opt-in count that
 * defaults to 0 (such as `bench sequence --walk`) may stay 0, and every bad option is named.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseBenchArgs } from '../../src/cli/bench/report.js';

function quietly<T>(fn: () => T): { result: T; stderr: string } {
  const write = process.stderr.write.bind(process.stderr);
  let stderr = '';
  process.stderr.write = ((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  }) as typeof process.stderr.write;
  try {
    return { result: fn(), stderr };
  } finally {
    process.stderr.write = write;
  }
}

test('defaults apply, and a count defaulting to 0 is accepted as 0', () => {
  const { result } = quietly(() => parseBenchArgs('sequence', 'usage\n', [], { leads: 10, walk: 0 }));
  assert.deepEqual(result, { ok: true, numbers: { leads: 10, walk: 0 }, db: 'pglite', json: false });
  const explicit = quietly(() => parseBenchArgs('sequence', 'usage\n', ['--walk', '0', '--db', 'postgres', '--json'], { leads: 10, walk: 0 }));
  assert.deepEqual(explicit.result, { ok: true, numbers: { leads: 10, walk: 0 }, db: 'postgres', json: true });
});

test('counts with a positive default must be at least 1, and every bad option is named', () => {
  const { result, stderr } = quietly(() =>
    parseBenchArgs('pool', 'usage\n', ['--leads', '0', '--walk=-1', '--db', 'mysql'], { leads: 10, walk: 0 }),
  );
  assert.deepEqual(result, { ok: false, exitCode: 2 });
  assert.match(stderr, /--leads must be a whole number >= 1/);
  assert.match(stderr, /--walk must be a whole number >= 0/);
  assert.match(stderr, /--db must be pglite or postgres/);
});

test('a fraction or an unknown option is refused', () => {
  const fraction = quietly(() => parseBenchArgs('pool', 'usage\n', ['--leads', '1.5'], { leads: 10 }));
  assert.deepEqual(fraction.result, { ok: false, exitCode: 2 });
  assert.match(fraction.stderr, /--leads must be a whole number >= 1/);
  const unknown = quietly(() => parseBenchArgs('pool', 'usage\n', ['--rows', '5'], { leads: 10 }));
  assert.deepEqual(unknown.result, { ok: false, exitCode: 2 });
  assert.match(unknown.stderr, /rows/);
});
