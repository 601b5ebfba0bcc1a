import { spawn } from 'node:child_process';
import { configToEnv, loadConfig } from '../clients/config';
import { getLogger } from '../clients/logger';
import { startStack } from './stack';

/**
 * `with-stack -- CMD ARGS…`: starts a throwaway stack, runs CMD with the stack's settings in its
 * environment, tears the stack down and exits with CMD's status. Tests share one stack this way.
 */
async function main(): Promise<number> {
  const sep = process.argv.indexOf('--');
  const cmd = sep >= 0 ? process.argv.slice(sep + 1) : [];
  if (cmd.length === 0) throw new Error('usage: with-stack -- command [args…]');
  const cfg = loadConfig();
  const log = getLogger(cfg, 'with-stack');
  const started = Date.now();
  const stack = await startStack(cfg, log, { ephemeral: true });
  log.info({ ms: Date.now() - started }, 'test stack ready');
  const code = await new Promise<number>((resolve) => {
    const child = spawn(cmd[0]!, cmd.slice(1), { stdio: 'inherit', env: { ...process.env, ...configToEnv(stack.cfg, stack.databaseUrl), QCFLOW_TEST_STACK: '1' } });
    child.on('exit', (c, sig) => resolve(c ?? (sig ? 1 : 0)));
    for (const s of ['SIGINT', 'SIGTERM'] as const) process.once(s, () => child.kill(s));
  });
  await stack.stop();
  return code;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`with-stack: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
