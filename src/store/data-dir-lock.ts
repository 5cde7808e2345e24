import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';

export class DataDirInUseError extends Error {
  readonly code = 'DATA_DIR_IN_USE';
}

/**
 * PGlite is one process's database: two processes writing one data directory would corrupt it.
 * A lock file with the owner's pid keeps a second one out; a lock left by a dead process is taken.
 */
export function lockDataDir(dir: string): () => void {
  const path = join(dir, 'fleetcast.lock');
  for (let i = 0; i < 2; i++) {
    try {
      const fd = openSync(path, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return () => rmSync(path, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number(readFileSync(path, 'utf8').trim());
      if (pid && pid !== process.pid && alive(pid)) {
        throw new DataDirInUseError(`data directory ${dir} is in use by process ${pid}`);
      }
      rmSync(path, { force: true });
    }
  }
  throw new DataDirInUseError(`could not lock data directory ${dir}`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
