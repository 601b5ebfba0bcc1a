import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { OpenFeature, ProviderEvents } from '@openfeature/server-sdk';
import { PgFlagProvider } from '../../src/rollout/flag-provider';
import { saveFlag } from '../../src/store/flags';
import { harness, uid, waitUntil, type Harness } from './helpers';

let h: Harness;
let provider: PgFlagProvider;
before(async () => {
  h = await harness({ worker: false });
  provider = new PgFlagProvider({ connectionString: h.cfg.databaseUrl! });
  await OpenFeature.setProviderAndWait(provider);
});
after(async () => {
  await OpenFeature.close();
  await h.close();
});

const ids = Array.from({ length: 4000 }, (_, i) => `sample-${i}`);

async function split(flag: string): Promise<Map<string, string>> {
  const client = OpenFeature.getClient();
  const out = new Map<string, string>();
  for (const id of ids) out.set(id, await client.getStringValue(flag, 'none', { targetingKey: id, project: 'p' }));
  return out;
}

test('flags in Postgres reach OpenFeature clients and reload within seconds of a change; a ramp keeps its first units', async () => {
  const flag = `layer3.${uid()}`;
  const changed: string[][] = [];
  provider.events.addHandler(ProviderEvents.ConfigurationChanged, (d) => changed.push((d?.flagsChanged as string[] | undefined) ?? []));
  assert.equal(await OpenFeature.getClient().getStringValue(flag, 'fp32', { targetingKey: 'x' }), 'fp32', 'an unknown flag answers the default');
  const at = (share: number) => ({ key: flag, salt: 's1', defaultVariant: 'fp32', enabled: true, arms: [{ variant: 'int8', share }, { variant: 'fp32', share: 1 - share }] });
  const t0 = Date.now();
  await saveFlag(h.pool, at(0.1), 'test');
  await waitUntil('the provider saw the new flag', async () => (await OpenFeature.getClient().getStringValue(flag, 'none', { targetingKey: 'x' })) !== 'none', 10_000);
  const reloadMs = Date.now() - t0;
  assert.ok(reloadMs < 5000, `reloaded in ${reloadMs} ms`);
  assert.ok(changed.some((keys) => keys.includes(flag)), 'ConfigurationChanged named the flag');
  const ten = await split(flag);
  const treated10 = [...ten.values()].filter((v) => v === 'int8').length / ids.length;
  assert.ok(Math.abs(treated10 - 0.1) < 0.02, `10% arm got ${treated10}`);

  await saveFlag(h.pool, at(0.25), 'test');
  await waitUntil('the ramp to 25%', async () => [...(await split(flag)).values()].filter((v) => v === 'int8').length / ids.length > 0.2, 10_000);
  const quarter = await split(flag);
  for (const [id, v] of ten) if (v === 'int8') assert.equal(quarter.get(id), 'int8', `${id} left the treatment when it grew`);

  // Details say why: a split, or the flag switched off.
  const details = await OpenFeature.getClient().getStringDetails(flag, 'none', { targetingKey: 'sample-1' });
  assert.equal(details.reason, 'SPLIT');
  await saveFlag(h.pool, { ...at(0.25), enabled: false }, 'test');
  await waitUntil('switched off', async () => (await OpenFeature.getClient().getStringDetails(flag, 'none', { targetingKey: 'sample-1' })).reason === 'DISABLED', 10_000);
  assert.equal(await OpenFeature.getClient().getStringValue(flag, 'none', { targetingKey: 'sample-7' }), 'fp32');
  // No unit, no bucket: the default, with the reason.
  const noKey = await OpenFeature.getClient().getStringDetails(flag.replace('layer3', 'other'), 'dflt', {});
  assert.equal(noKey.value, 'dflt');
  const audit = await h.pool.query(`SELECT count(*)::int AS n FROM audit_log WHERE action = 'flag.set' AND subject = $1`, [flag]);
  assert.equal(audit.rows[0].n, 3);
});
