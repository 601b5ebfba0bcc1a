import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isStage, STAGES, transitionProblem } from '../../src/models/lifecycle';

test('model lifecycle: forward one stage at a time, back from canary, archive from anywhere, never out of archived', () => {
  const allowed = STAGES.flatMap((from) => STAGES.filter((to) => !transitionProblem(from, to)).map((to) => `${from}→${to}`));
  assert.deepEqual(allowed, [
    'registered→validated', 'registered→archived', 'validated→canary', 'validated→archived',
    'canary→validated', 'canary→production', 'canary→archived', 'production→archived',
  ]);
  assert.match(transitionProblem('validated', 'production')!, /from validated it can become canary or archived/);
  assert.match(transitionProblem('archived', 'registered')!, /stays archived/);
  assert.equal(isStage('canary'), true);
  assert.equal(isStage('beta'), false);
});
