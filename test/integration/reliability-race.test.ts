import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fitBatchReliability } from '../../src/store/reliability';
import { createTestProject, harness } from './helpers';

test('concurrent batches of one project both land in the stored annotator reliability, each once', async () => {
  const h = await harness({ worker: false });
  try {
    const project = await createTestProject(h.pool, undefined, { ontology: { classes: ['cat', 'dog'] } });
    const batch = (n: number, cls: string) => Array.from({ length: n }, () => [{ annotator: 'ann-1', value: cls }, { annotator: 'ann-2', value: cls }]);
    // Eight batches at once on one pool: without the per-project lock, fits read the same counts and the last write wins.
    const sizes = [40, 55, 60, 35, 70, 45, 50, 65];
    await Promise.all(sizes.map((n, i) => fitBatchReliability(h.pool, project, `b-${i}`, batch(n, i % 2 ? 'dog' : 'cat'), ['cat', 'dog'])));
    // A retried batch is not counted again.
    await fitBatchReliability(h.pool, project, 'b-0', batch(40, 'cat'), ['cat', 'dog']);
    const { rows } = await h.pool.query<{ class_counts: number[] }>('SELECT class_counts FROM reliability_models WHERE project_id = $1', [project]);
    const total = rows[0]!.class_counts.reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(total - sizes.reduce((a, b) => a + b, 0)) < 1e-6, `class counts sum to ${total}`);
    const conf = await h.pool.query<{ confusion: number[][] }>(`SELECT confusion FROM annotator_reliability WHERE project_id = $1 AND annotator = 'ann-1'`, [project]);
    const votes = conf.rows[0]!.confusion.flat().reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(votes - sizes.reduce((a, b) => a + b, 0)) < 1e-6, `ann-1's confusion counts ${votes} votes`);
  } finally {
    await h.close();
  }
});
