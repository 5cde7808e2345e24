/**
 * The all-benchmarks table: targets marked met or not, the graphile-worker ratio worked out from
 * the rows, and the load the figures were taken at, so a busy machine's table is not read as a
 * quiet one's.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { renderTable, type Row } from '../../src/cli/bench/all.js';
import type { MachineInfo } from '../../src/cli/bench/report.js';

const m: MachineInfo = { cores: 2, memoryGB: 23.5, cpu: 'Test CPU', node: 'v20.20.2', platform: 'linux x', loadAverage: 9 };

function row(name: string, mps: number, loadAverage: number, met: boolean | null = null): Row {
  return { name, what: `what ${name}`, figure: `${mps} msg/s`, rssMB: 100, target: met === null ? '' : '>= 1', met, result: { messagesPerSecond: mps, loadAverage } };
}

test('the table names the range of load averages its rows were measured at, and the ratio', () => {
  const table = renderTable([row('dispatch-postgres', 20_000, 0.4, true), row('graphile-worker', 8_000, 1.25)], m, '2026-12-03', 1);
  assert.match(table, /Test CPU, 2 cores, 23.5 GB, Node v20.20.2, linux x; 1-minute load average 0.4-1.25 when the figures were taken\./);
  assert.match(table, /\| what dispatch-postgres \| 20000 msg\/s \| 100 MB \| >= 1: met \|/);
  assert.match(table, /1 process each: \*\*2.5x\*\* \(target >= 2x: met\)/);
});

test('rows without a load figure fall back to the load at the end of the run', () => {
  const r = row('graphile-worker', 8_000, 0);
  delete r.result.loadAverage;
  const table = renderTable([r], m, '2026-12-03', 0.1);
  assert.match(table, /\(scale 0.1: sizes are 0.1 of those named\); 1-minute load average 9 when/);
});

test('the table says whether each row waited for a quiet machine, and the longest wait', () => {
  const quiet = (waitedMs: number, ok = true) => ({ waitedMs, quiet: ok, loadAverage: 0.5, autovacuumWorkers: 0 });
  const a = { ...row('dispatch-postgres', 20_000, 0.4), settled: quiet(12_400) };
  const b = { ...row('graphile-worker', 8_000, 0.6), settled: quiet(180_000, false) };
  const table = renderTable([a, b], m, '2026-12-03', 1);
  assert.match(table, /Each row started after a PostgreSQL checkpoint, once no autovacuum worker ran and the 1-minute load was below half the cores \(the longest wait was 180 s; 1 row started without that after 3 minutes\)\./);
  assert.match(renderTable([row('graphile-worker', 8_000, 0.6)], m, '2026-12-03', 1), /Each row started as soon as the one before it ended\./);
});
