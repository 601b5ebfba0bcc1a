import type { Pool, PoolClient } from 'pg';
import { withTransaction } from '../clients/pg';
import { annotatorAccuracy, dawidSkene, flooredConfusion, posterior, type ClassVote, type ReliabilityCounts } from '../qc/stats/dawid-skene';

/** The reliability model one batch is judged with: fitted on the project's history plus this batch. */
export interface BatchFit {
  classes: string[];
  classPrior: number[];
  confusion: Record<string, number[][]>;
  /** Expected accuracy per annotator; consensus weights. */
  weights: Record<string, number>;
  items: number;
  iterations: number;
}

/** Class votes as indices into `classes`; votes for other classes (layer-2 findings already) carry no signal. */
export function toClassVotes(classes: string[], votes: Array<{ annotator: string; value: string }>): ClassVote[] {
  return votes.flatMap((x) => {
    const label = classes.indexOf(x.value);
    return label >= 0 ? [{ annotator: x.annotator, label }] : [];
  });
}

/**
 * The batch's class model: for any set of class votes, the posterior over the true class under the fit
 * (confusions floored, see flooredConfusion), and `flat`: the same from the labels alone, with a flat class
 * prior. Each annotator's matrix is floored once per batch, not once per sample and object.
 */
export function classModelOf(fit: BatchFit): (votes: Array<{ annotator: string; value: string }>) => { classes: string[]; p: number[]; flat: number[] } {
  const k = fit.classes.length;
  const flatPrior = new Array<number>(k).fill(1 / k);
  const floored = new Map<string, number[][]>();
  const confusionOf = (a: string): number[][] | undefined => {
    if (!fit.confusion[a]) return undefined;
    let m = floored.get(a);
    if (!m) floored.set(a, (m = flooredConfusion(fit.confusion[a], fit.classPrior)));
    return m;
  };
  return (votes) => {
    const confusion = Object.fromEntries(votes.flatMap((v) => { const m = confusionOf(v.annotator); return m ? [[v.annotator, m]] : []; }));
    const cv = toClassVotes(fit.classes, votes);
    return { classes: fit.classes, p: posterior(cv, fit.classPrior, confusion, k), flat: posterior(cv, flatPrior, confusion, k) };
  };
}

/** Each annotator's estimated accuracy in the project (Dawid–Skene, all batches so far); absent: no record yet. */
export async function annotatorAccuracies(db: Pool | PoolClient, project: string, annotators: string[]): Promise<Record<string, number>> {
  const { rows } = await db.query<{ annotator: string; accuracy: number }>(
    'SELECT annotator, accuracy FROM annotator_reliability WHERE project_id = $1 AND annotator = ANY($2)', [project, annotators],
  );
  return Object.fromEntries(rows.map((r) => [r.annotator, r.accuracy]));
}

async function loadCounts(pool: Pool | PoolClient, project: string, annotators: string[]): Promise<ReliabilityCounts | undefined> {
  const model = await pool.query<{ classes: string[]; class_counts: number[] }>('SELECT classes, class_counts FROM reliability_models WHERE project_id = $1', [project]);
  const m = model.rows[0];
  if (!m) return undefined;
  const rows = await pool.query<{ annotator: string; confusion: number[][] }>(
    'SELECT annotator, confusion FROM annotator_reliability WHERE project_id = $1 AND annotator = ANY($2)', [project, annotators],
  );
  return { classes: m.classes, classCounts: m.class_counts, confusion: Object.fromEntries(rows.rows.map((r) => [r.annotator, r.confusion])) };
}

/**
 * Fits Dawid–Skene for one batch, warm-started from the project's stored counts, and adds the batch's counts to
 * them exactly once: the fit row doubles as the marker, so a retried activity reuses the first fit instead of
 * counting the batch twice (and judges its samples with the same model). Read, fit and write happen under a
 * per-project advisory lock in one transaction: batches of a project run concurrently, and without it two
 * fits read the same counts and the second write drops the first batch's update.
 */
export async function fitBatchReliability(
  pool: Pool, project: string, batchId: string, votes: Array<Array<{ annotator: string; value: string }>>, ontologyClasses: string[] | undefined,
): Promise<BatchFit> {
  return withTransaction(pool, async (c) => {
    await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`qcflow.reliability:${project}`]);
    const existing = await c.query<{ fit: BatchFit }>('SELECT fit FROM reliability_fits WHERE project_id = $1 AND batch_id = $2', [project, batchId]);
    if (existing.rows[0]) return existing.rows[0].fit;
    const annotators = [...new Set(votes.flatMap((v) => v.map((x) => x.annotator)))].sort();
    const prior = await loadCounts(c, project, annotators);
    const classes = ontologyClasses ?? [...new Set([...(prior?.classes ?? []), ...votes.flatMap((v) => v.map((x) => x.value))])].sort();
    // Samples without class votes would only add the prior back into the class counts.
    const items = votes.map((v) => toClassVotes(classes, v)).filter((v) => v.length > 0);
    const ds = dawidSkene(items, classes, prior);
    const weights = Object.fromEntries(annotators.map((a) => [a, annotatorAccuracy(ds.confusion[a]!, ds.classPrior)]));
    const fit: BatchFit = { classes, classPrior: ds.classPrior, confusion: ds.confusion, weights, items: items.length, iterations: ds.iterations };
    await c.query('INSERT INTO reliability_fits (project_id, batch_id, fit) VALUES ($1, $2, $3)', [project, batchId, JSON.stringify(fit)]);
    await c.query(
      `INSERT INTO reliability_models (project_id, classes, class_counts) VALUES ($1, $2, $3)
       ON CONFLICT (project_id) DO UPDATE SET classes = EXCLUDED.classes, class_counts = EXCLUDED.class_counts, updated_at = now()`,
      [project, JSON.stringify(classes), JSON.stringify(ds.updated.classCounts)],
    );
    for (const a of annotators) {
      await c.query(
        `INSERT INTO annotator_reliability (project_id, annotator, confusion, accuracy) VALUES ($1, $2, $3, $4)
         ON CONFLICT (project_id, annotator) DO UPDATE SET confusion = EXCLUDED.confusion, accuracy = EXCLUDED.accuracy, updated_at = now()`,
        [project, a, JSON.stringify(ds.updated.confusion[a]), weights[a]],
      );
    }
    return fit;
  });
}
