import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { loadConfig } from '../../src/clients/config';
import { MissingToolError, onPath } from '../../src/infra/binaries';
import { temporal as proto } from '@temporalio/proto';
import { SEARCH_ATTRIBUTE_TYPES } from '../../workflows/search-attributes';

/**
 * Temporal's time-skipping test server. `createTimeSkipping` would download a native build from GitHub,
 * which cannot work here; the same server is sdk-java's `io.temporal.testserver.TestServer`, published on
 * Maven Central. It is fetched once with Maven into the binary cache and run with the JDK behind the
 * command line the SDK expects (`<port> [args]`).
 */
export const TEST_SERVER_VERSION = '1.38.0';

const POM = `<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>qcflow</groupId><artifactId>temporal-test-server-deps</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>io.temporal</groupId><artifactId>temporal-test-server</artifactId><version>${TEST_SERVER_VERSION}</version></dependency>
  </dependencies>
</project>
`;

const WRAPPER = `#!/bin/sh
# sdk-java's time-skipping test server as the Temporal SDK's ephemeral server runs it: <port> [args].
dir=$(dirname "$0")
case " $* " in *" --enable-time-skipping "*) ;; *) set -- "$@" --enable-time-skipping ;; esac
exec java -cp "$dir/lib/*" io.temporal.testserver.TestServer "$@"
`;

function run(cmd: string, args: string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let tail = '';
    const keep = (b: Buffer): void => { tail = (tail + b.toString()).slice(-4000); };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new MissingToolError(`${cmd} ${args.join(' ')} failed (exit ${code}):\n${tail}`))));
  });
}

/** The test server's launcher in the binary cache, fetched with Maven on first use (≈ 30 MB of jars). */
export async function ensureTestServer(cacheDir = loadConfig().binCacheDir): Promise<string> {
  const dir = path.join(cacheDir, `temporal-test-server-${TEST_SERVER_VERSION}`);
  const launcher = path.join(dir, 'temporal-test-server');
  if (existsSync(launcher)) return launcher;
  for (const tool of ['mvn', 'java']) {
    if (!onPath(tool)) throw new MissingToolError(`the time-skipping workflow tests run sdk-java's test server: install a JDK 11+ and Maven (apt-get install default-jdk maven), then run again`);
  }
  mkdirSync(cacheDir, { recursive: true });
  const build = mkdtempSync(path.join(cacheDir, '.build-temporal-test-server-'));
  try {
    writeFileSync(path.join(build, 'pom.xml'), POM);
    await run('mvn', ['-q', '-B', 'dependency:copy-dependencies', '-DoutputDirectory=lib', '-DincludeScope=runtime'], build);
    writeFileSync(path.join(build, 'temporal-test-server'), WRAPPER);
    chmodSync(path.join(build, 'temporal-test-server'), 0o755);
    rmSync(path.join(build, 'pom.xml'));
    renameSync(build, dir);
  } finally {
    rmSync(build, { recursive: true, force: true });
  }
  return launcher;
}

/**
 * A time-skipping environment on that server, with qcflow's search attributes registered as the stack
 * registers them, and skipping locked: workflow time then moves only by `env.sleep`. The server starts
 * unlocked, and left to skip on its own it also skips past workflow tasks in flight and to the 10-year run
 * timeout of an idle workflow (sdk-java#1291).
 */
export async function timeSkippingEnv(): Promise<TestWorkflowEnvironment> {
  const env = await TestWorkflowEnvironment.createTimeSkipping({ server: { executable: { type: 'existing-path', path: await ensureTestServer() } } });
  await env.connection.testService!.lockTimeSkipping({});
  const keyword = proto.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD;
  await env.connection.operatorService.addSearchAttributes({ namespace: env.namespace ?? 'default', searchAttributes: Object.fromEntries(Object.keys(SEARCH_ATTRIBUTE_TYPES).map((name) => [name, keyword])) });
  return env;
}
