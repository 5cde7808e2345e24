#!/usr/bin/env node
/** The `fleetcast` command. */
import v8 from 'node:v8';
import { ConfigError, loadEnvFile } from '../config.js';

// PGlite is PostgreSQL compiled to WebAssembly. By default V8 compiles it twice: at once with its
// baseline compiler, then again, function by function, with the optimizing one, keeping both.
// Compiling it once, optimized, before it first runs costs about two seconds more at start and
// keeps ~20 MB less resident, and the start no longer peaks ~60 MB above that (measured opening a
// data directory: peak RSS 257 -> 193 MB). Set here, before any command loads PGlite.
v8.setFlagsFromString('--no-liftoff');

const USAGE = `usage: fleetcast <command> [options]

commands:
  serve [--role all|api|worker]  run the HTTP server and the engine (PORT, FLEETCAST_DATA_DIR, DATABASE_URL);
                                api: the HTTP API only; worker: the engine only (health routes on PORT)
  demo [--data-dir DIR] [--password PW] [--port N]
                                the server with simulated devices and sample data (./data-demo)
  migrate                       apply database migrations and exit
  backup FILE                   write the database and media files to FILE (PGlite: stop the server first)
  restore FILE [--force]        restore a backup; --force replaces a database that is not empty
  simulate SCENARIO.json --out DIR [--db pglite|postgres]
                                run a scenario on the virtual clock against the simulator
  bench dispatch [--devices N] [--messages N] [--db pglite|postgres] [--json]
                                measure the dispatcher end to end
  chaos [options]               kill workers, restart PostgreSQL and flap devices mid-campaign, then
                                check nothing was lost or sent twice (fleetcast chaos --help)
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  // Settings may come from ./.env; variables already in the environment win.
  if (command !== undefined && !['help', '--help', '-h'].includes(command)) loadEnvFile();
  switch (command) {
    case 'serve': {
      const { serve, parseServeArgs } = await import('./serve.js');
      await serve(parseServeArgs(rest));
      return -1;
    }
    case 'demo': {
      const { demoCommand } = await import('./demo.js');
      return demoCommand(rest);
    }
    case 'migrate': {
      const { migrateCommand } = await import('./migrate.js');
      return migrateCommand();
    }
    case 'backup': {
      const { backupCommand } = await import('./backup.js');
      return backupCommand(rest);
    }
    case 'restore': {
      const { restoreCommand } = await import('./backup.js');
      return restoreCommand(rest);
    }
    case 'simulate': {
      const { simulateCommand } = await import('./simulate.js');
      return simulateCommand(rest);
    }
    case 'chaos': {
      const { chaosCommand } = await import('./chaos.js');
      return chaosCommand(rest);
    }
    case 'bench': {
      const { benchCommand } = await import('./bench.js');
      return benchCommand(rest);
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return command === undefined ? 2 : 0;
    default:
      process.stderr.write(`fleetcast: unknown command "${command}"\n\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (err: unknown) => {
    const code = (err as { code?: string })?.code;
    if (err instanceof ConfigError || code === 'DATA_DIR_IN_USE' || code === 'BACKUP_FAILED') {
      process.stderr.write(`fleetcast: ${(err as Error).message}\n`);
    } else {
      process.stderr.write(`fleetcast: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    }
    process.exitCode = 1;
  },
);
