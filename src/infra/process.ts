import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync } from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import type { Logger } from '../clients/logger';

export interface ManagedProcess {
  name: string;
  child: ChildProcess;
  logFile: string;
  stop(): Promise<void>;
  /** Ends it at once with `signal` (a crash, as fault tests need), resolving when it has exited. */
  kill(signal: NodeJS.Signals): Promise<void>;
}

/** Starts a server process whose output goes to `<logDir>/<name>.log`, so a failed start can be diagnosed. */
export function startProcess(name: string, cmd: string, args: string[], logDir: string, opts: SpawnOptions = {}): ManagedProcess {
  mkdirSync(logDir, { recursive: true });
  const logFile = path.join(logDir, `${name}.log`);
  const out = createWriteStream(logFile, { flags: 'a' });
  const child = spawn(cmd, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
  // Both streams share the file, so neither may end it: it ends when the process has closed both.
  child.stdout?.pipe(out, { end: false });
  child.stderr?.pipe(out, { end: false });
  child.once('close', () => out.end());
  let exited = false;
  const exitedPromise = new Promise<void>((resolve) => child.once('exit', () => { exited = true; resolve(); }));
  child.once('error', () => { exited = true; });
  return {
    name,
    child,
    logFile,
    async stop() {
      if (exited) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exitedPromise;
      clearTimeout(timer);
    },
    async kill(signal) {
      if (exited) return;
      child.kill(signal);
      await exitedPromise;
    },
  };
}

/** A port nothing listens on: any (the OS picks), or one below `below` (tried at random). */
export async function freePort(below?: number): Promise<number> {
  const tryPort = (port: number): Promise<number> => new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(port, '127.0.0.1', () => {
      const bound = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(bound));
    });
  });
  if (below === undefined) return tryPort(0);
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = 20000 + Math.floor(Math.random() * (below - 20000));
    const ok = await tryPort(port).catch(() => undefined);
    if (ok) return ok;
  }
  throw new Error(`no free port found below ${below}`);
}

/** The last `lines` lines of a log file, for an error message ('' when it cannot be read). */
export function logTail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

export interface WaitOptions {
  timeoutMs: number;
  proc?: ManagedProcess;
  /** Says every few seconds what is still being waited for, so a slow first start never looks hung. */
  log?: Logger;
}

/** Polls `probe` until it returns true; the error names the service, its log and the log's last lines. */
export async function waitFor(what: string, probe: () => Promise<boolean>, o: WaitOptions): Promise<void> {
  const started = Date.now();
  const deadline = started + o.timeoutMs;
  let nextReport = started + 5_000;
  const tail = (): string => {
    const t = o.proc ? logTail(o.proc.logFile) : '';
    return t ? `\nlast lines of ${o.proc!.logFile}:\n${t}` : '';
  };
  while (Date.now() < deadline) {
    if (o.proc && o.proc.child.exitCode !== null) {
      throw new Error(`${what} exited with code ${o.proc.child.exitCode} while starting; see ${o.proc.logFile}${tail()}`);
    }
    if (await probe().catch(() => false)) {
      o.log?.info({ service: what, readyMs: Date.now() - started }, `${what} is ready`);
      return;
    }
    if (Date.now() >= nextReport) {
      o.log?.info({ service: what, waitedS: Math.round((Date.now() - started) / 1000), timeoutS: Math.round(o.timeoutMs / 1000) }, `waiting for ${what} to start…`);
      nextReport += 5_000;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${what} did not become ready within ${Math.round(o.timeoutMs / 1000)}s (raise QCFLOW_START_TIMEOUT_S on a slow machine)${o.proc ? `; see ${o.proc.logFile}` : ''}${tail()}`);
}

/** Whether something accepts TCP connections on host:port. */
export function portInUse(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (used: boolean): void => {
      socket.destroy();
      resolve(used);
    };
    socket.setTimeout(1000, () => done(true));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/**
 * Runs `stop` and exits on SIGINT/SIGTERM until the returned function is called, so processes a command
 * started are stopped however it is interrupted (not only by a terminal's Ctrl-C, which reaches them too).
 * A second signal exits at once.
 */
export function stopOnSignal(stop: () => Promise<void>, log: Logger): () => void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals): void => {
    const code = signal === 'SIGINT' ? 130 : 143;
    if (stopping) process.exit(code);
    stopping = true;
    log.info({ signal }, 'interrupted: stopping what this command started');
    stop().then(() => process.exit(code), (err: unknown) => {
      log.error({ err }, 'could not stop everything this command started');
      process.exit(code);
    });
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return () => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  };
}
