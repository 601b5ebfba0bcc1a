/**
 * `npm run bench -- qc`: how much human work QC saves, and how safely, on a synthetic crowd with known
 * truth (bench/crowd.ts), run end to end through Temporal on an ephemeral stack with the default policy and
 * no layer-3 model. Prints one JSON line; where Python can install cleanlab (PyPI), cleanlab's CROWDLAB
 * (`get_label_quality_multiannotator`, with out-of-fold classifier probabilities from the samples'
 * signal) runs on the same labels in the same run, side by side.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadConfig } from '../src/clients/config';
import { getLogger } from '../src/clients/logger';
import { createPool } from '../src/clients/pg';
import { createObjectStore } from '../src/clients/minio';
import { createTemporalClient } from '../src/clients/temporal';
import { startStack } from '../src/infra/stack';
import { ingestFile } from '../src/cli/ingest';
import { upsertProject } from '../src/store/projects';
import { validateProjectDefinition } from '../src/projects/definition';
import { iou, type Box } from '../src/qc/consistency/matching';
import { dawidSkene } from '../src/qc/stats/dawid-skene';
import { startCpuWorker } from '../workers/cpu';
import { startReviewWorker } from '../workers/review';
import { CROWD_CLASSES, CROWD_ONTOLOGY, CROWD_SCHEMA, generateCrowd, oracleRisk, type CrowdTruth } from './crowd';
import { auroc, coverageAtErrorRate, majorityVote } from './qc-metrics';
import { crowdlab } from './cleanlab';
import { calibration } from '../src/qc/stats/calibration';

const log = getLogger(loadConfig(), 'bench.qc');

interface Outcome { status: string; cls?: string; box?: Box; pose?: string; boxes: number; pWrong?: number }

function correctness(t: CrowdTruth, o: Outcome): { cls: boolean; all: boolean } {
  const cls = o.cls === t.cls;
  const box = o.boxes === 1 && !!o.box && iou(o.box, t.box) >= 0.5;
  return { cls, all: cls && box && o.pose === t.pose };
}

export async function qcBench(): Promise<void> {
  const n = Number(process.env.QCFLOW_BENCH_QC_SAMPLES ?? 5000);
  const crowd = generateCrowd(n);
  const cfg = loadConfig();
  const stack = await startStack(cfg, log, { ephemeral: true });
  const pool = createPool(stack.databaseUrl, 4);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'qcflow-qc-bench-'));
  const workers = [await startCpuWorker(stack.cfg), await startReviewWorker(stack.cfg)];
  const { client, connection } = await createTemporalClient(stack.cfg);
  try {
    const project = 'crowd';
    await upsertProject(pool, validateProjectDefinition({ id: project, jsonSchema: CROWD_SCHEMA, regexRules: [], ontology: CROWD_ONTOLOGY }), 'bench');
    const file = path.join(dir, 'crowd.jsonl');
    writeFileSync(file, crowd.lines.join('\n') + '\n');
    const t0 = Date.now();
    const result = await ingestFile(stack.cfg, client, createObjectStore(stack.cfg.minio), { project, file, batchSize: 1000, wait: true });
    const seconds = (Date.now() - t0) / 1000;
    if (result.failedBatches.length) throw new Error(`batches failed: ${result.failedBatches.join(', ')}`);

    const { rows } = await pool.query<{ external_id: string; status: string; reason: string | null; consensus: { classes?: { classes: string[] }; boxes?: Array<{ geometry: Box; attributes?: { pose?: string } }> } | null; p_wrong: string | null; p_class: string | null; p_primary: string | null; risk: unknown }>(
      `SELECT s.external_id, s.status, q5.details->>'reason' AS reason, q2.details->'consensus' AS consensus, q5.details->'risk'->>'pWrong' AS p_wrong, q5.details->'risk' AS risk,
              (SELECT f->>'pWrong' FROM jsonb_array_elements(q5.details->'risk'->'fields') f WHERE f->>'field' = 'class') AS p_class,
              q5.details->'risk'->>'primary' AS p_primary
       FROM samples s LEFT JOIN qc_results q2 ON q2.sample_id = s.id AND q2.layer = 2 LEFT JOIN qc_results q5 ON q5.sample_id = s.id AND q5.layer = 5
       WHERE s.project_id = $1`, [project],
    );
    const reasonOf = new Map(rows.map((r) => [r.external_id, r.reason ?? '?']));
    const byId = new Map(rows.map((r) => [r.external_id, {
      status: r.status, cls: r.consensus?.classes?.classes[0], box: r.consensus?.boxes?.[0]?.geometry, pose: r.consensus?.boxes?.[0]?.attributes?.pose,
      boxes: r.consensus?.boxes?.length ?? 0, pWrong: r.p_wrong === null ? undefined : Number(r.p_wrong),
    } satisfies Outcome]));
    const classRisk = new Map(rows.filter((r) => r.p_class !== null).map((r) => [r.external_id, Number(r.p_class)]));
    const primaryRiskOf = new Map(rows.filter((r) => r.p_primary !== null).map((r) => [r.external_id, Number(r.p_primary)]));
    const usable = crowd.truth.filter((t) => !t.schemaViolation);
    const violations = crowd.truth.filter((t) => t.schemaViolation);
    const outcome = (t: CrowdTruth): Outcome => byId.get(t.externalId) ?? { status: 'missing', boxes: 0 };
    const accepted = usable.filter((t) => ['accepted', 'released'].includes(outcome(t).status));
    const right = (t: CrowdTruth) => correctness(t, outcome(t));
    const wrongAccepted = accepted.filter((t) => !right(t).all).length;
    const clean = usable.filter((t) => right(t).all);
    const scored = usable.filter((t) => outcome(t).pWrong !== undefined);
    const risk = scored.map((t) => outcome(t).pWrong!);
    const wrong = scored.map((t) => !right(t).all);
    const cal = calibration(risk, wrong);
    const oracle = scored.map((t) => oracleRisk(t, outcome(t), crowd.profiles));

    // Baselines on the same votes: majority vote and plain Dawid–Skene fitted on the whole set at once.
    const classes = [...CROWD_CLASSES] as string[];
    const ds = dawidSkene(usable.map((t) => t.votes.map((v, k) => ({ annotator: t.annotators[k]!, label: classes.indexOf(v) }))), classes);
    const dsAcc = usable.filter((t, i) => classes[ds.posteriors[i]!.indexOf(Math.max(...ds.posteriors[i]!))] === t.cls).length / usable.length;
    const mvAcc = usable.filter((t) => majorityVote(t.votes) === t.cls).length / usable.length;

    const errorRate = accepted.length ? wrongAccepted / accepted.length : 0;
    const share = (f: (t: CrowdTruth) => boolean): number => (accepted.length ? +(accepted.filter(f).length / accepted.length).toFixed(4) : 0);
    const primaryWrong = (t: CrowdTruth): boolean => { const o = outcome(t); return !right(t).cls || !(o.boxes === 1 && !!o.box && iou(o.box, t.box) >= 0.5); };
    const line: Record<string, unknown> = {
      bench: 'qc.crowd', samples: n, annotatorsPerSample: 3, policy: 'default (fusion.mode=risk, target error 0.5%), no layer-3 model',
      samplesPerSec: +(n / seconds).toFixed(1), seconds: +seconds.toFixed(1), targetSamplesPerSec: 300,
      schema: { violations: violations.length, rejected: violations.filter((t) => outcome(t).status === 'rejected').length, falseRejections: usable.filter((t) => outcome(t).status === 'rejected').length },
      coverage: +(accepted.length / usable.length).toFixed(4), acceptedErrorRate: +errorRate.toFixed(4), wrongAccepted,
      // The policy's two budgets: primary labels (class, box) 0.5%, attributes (pose) 2%.
      acceptedErrorRatePrimary: share(primaryWrong), targetErrorRate: 0.005,
      acceptedErrorRateAttributes: share((t) => outcome(t).pose !== t.pose), targetAttributeErrorRate: 0.02,
      cleanSentToReview: +(clean.filter((t) => outcome(t).status === 'review').length / clean.length).toFixed(4), targetCleanReview: 0.1,
      // Why clean samples went to a person, as shares of all clean samples: audit and annotator_alert are
      // sampling by policy (measuring QC precision, watching a decaying annotator), uncertain is the estimate.
      cleanReviewReasons: Object.fromEntries([...clean.filter((t) => outcome(t).status === 'review').reduce((m, t) => m.set(reasonOf.get(t.externalId)!, (m.get(reasonOf.get(t.externalId)!) ?? 0) + 1), new Map<string, number>())]
        .map(([k, v]) => [k, +(v / clean.length).toFixed(4)])),
      resampled: usable.filter((t) => outcome(t).status === 'resample').length, review: usable.filter((t) => outcome(t).status === 'review').length,
      errorEstimate: {
        auroc: +auroc(risk, wrong).toFixed(4), targetAuroc: 0.95, ece: +cal.ece.toFixed(4),
        // The class field's own estimate against class errors: what CROWDLAB's score is judged on.
        aurocClass: +auroc(scored.map((t) => classRisk.get(t.externalId) ?? 1), scored.map((t) => !right(t).cls)).toFixed(4),
        // The estimate acceptance is held to (primary labels: class, box; 0.5% budget) against primary errors.
        aurocPrimary: +auroc(scored.map((t) => primaryRiskOf.get(t.externalId) ?? 1), scored.map(primaryWrong)).toFixed(4),
        // The ceiling: the true posterior under the profiles that generated the votes, of the same consensus.
        oracleAuroc: +auroc(oracle.map((o) => o.all), wrong).toFixed(4),
        oracleAurocClass: +auroc(oracle.map((o) => o.cls), scored.map((t) => !right(t).cls)).toFixed(4),
        table: cal.table,
      },
      consensusAccuracy: {
        qcflowAllFields: +(clean.length / usable.length).toFixed(4),
        qcflowClass: +(usable.filter((t) => right(t).cls).length / usable.length).toFixed(4),
        majorityVoteClass: +mvAcc.toFixed(4), dawidSkeneClass: +dsAcc.toFixed(4),
      },
    };

    // The same crowd under a review budget of 5% of each batch: people get the likeliest errors, the rest
    // go back for more labels, and what is accepted does not change.
    const budget = 0.05;
    await upsertProject(pool, validateProjectDefinition({ id: 'crowd-budget', jsonSchema: CROWD_SCHEMA, regexRules: [], ontology: CROWD_ONTOLOGY, qcPolicy: { fusion: { risk: { reviewBudget: budget } } } }), 'bench');
    const budgeted = await ingestFile(stack.cfg, client, createObjectStore(stack.cfg.minio), { project: 'crowd-budget', file, batchSize: 1000, wait: true });
    if (budgeted.failedBatches.length) throw new Error(`batches failed: ${budgeted.failedBatches.join(', ')}`);
    const { rows: byReason } = await pool.query<{ status: string; reason: string | null; n: string }>(
      `SELECT s.status, q5.details->>'reason' AS reason, count(*) AS n FROM samples s LEFT JOIN qc_results q5 ON q5.sample_id = s.id AND q5.layer = 5
       WHERE s.project_id = 'crowd-budget' GROUP BY 1, 2`,
    );
    const count = (f: (r: { status: string; reason: string | null }) => boolean): number => byReason.filter(f).reduce((a, r) => a + Number(r.n), 0);
    const passed = count((r) => r.status !== 'rejected');
    line.withReviewBudget = {
      reviewBudget: budget, riskReviews: +(count((r) => r.reason === 'uncertain') / passed).toFixed(4),
      turnedAway: +(count((r) => r.reason === 'review_budget') / passed).toFixed(4),
      coverage: +(count((r) => ['accepted', 'released'].includes(r.status)) / passed).toFixed(4),
    };

    const annotatorIds = crowd.profiles.map((p) => p.id);
    line.cleanlab = crowdlab({
      classes, annotators: annotatorIds,
      labels: usable.map((t) => annotatorIds.map((a) => { const k = t.annotators.indexOf(a); return k >= 0 ? classes.indexOf(t.votes[k]!) : null; })),
      signal: usable.map((t) => t.signal), truth: usable.map((t) => classes.indexOf(t.cls)),
      qcflowClassErrorRate: accepted.length ? accepted.filter((t) => !right(t).cls).length / accepted.length : 0,
    }, stack.cfg.binCacheDir);
    // qcflow ranked the same way, on class correctness only (what CROWDLAB judges): by its class field's
    // risk (what CROWDLAB's per-sample score is), and by the whole sample's (what layer 5 decides on).
    const classWrong = scored.map((t) => !right(t).cls);
    line.qcflowClassCoverageAt = {
      '0.005': +coverageAtErrorRate(scored.map((t) => classRisk.get(t.externalId) ?? 1), classWrong, 0.005).toFixed(4),
      '0.005 (ranked by whole-sample risk)': +coverageAtErrorRate(risk, classWrong, 0.005).toFixed(4),
    };
    console.log(JSON.stringify(line));
    // Every sample's truth beside what QC made of it, for looking into a figure (one JSON object a line).
    if (process.env.QCFLOW_BENCH_QC_DUMP) {
      const riskOf = new Map(rows.map((r) => [r.external_id, r.risk]));
      writeFileSync(process.env.QCFLOW_BENCH_QC_DUMP, crowd.truth.map((t) => JSON.stringify({ ...t, outcome: outcome(t), reason: reasonOf.get(t.externalId), right: right(t), risk: riskOf.get(t.externalId) })).join('\n') + '\n');
    }
  } finally {
    for (const w of workers) await w.shutdown();
    await connection.close();
    await pool.end();
    await stack.stop();
  }
}
