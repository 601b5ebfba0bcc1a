/**
 * `npm run bench -- real-crowd`: layer 2 and the risk disposition on real human labels — CIFAR-10H
 * (Peterson et al. 2019: ~51 people labelled each CIFAR-10 test image). Three of each image's votes are
 * drawn without replacement and given to a pool of 30 anonymous annotator ids; the truth is the ~51-vote
 * majority. Pure logic, no stack, one Dawid–Skene fit over the set. Two passes over the same labels:
 * `raw` decides on the annotator models' estimate as it is; `recalibrated` runs the set as 20 batches of
 * 500 in order, reviewers deciding each batch's reviews (audit share and uncertain samples) by the truth
 * before the next batch starts, and each batch recalibrated on the reviews decided before it — what a
 * project does in production. The counts file (`data/cifar10h-counts.npy` of github.com/jcpeterson/cifar-10h,
 * 10000 × 10) is read from QCFLOW_CIFAR10H_COUNTS, converted to JSON
 * (`python3 -c "import numpy,json; json.dump(numpy.load(p).tolist(), open(out,'w'))"`); without it the
 * bench says so and prints nothing else. With QCFLOW_RTE_CSV (see rteItems) it also runs a second, harsher
 * real crowd whose annotator ids persist.
 */
import { existsSync, readFileSync } from 'node:fs';
import { checkConsistency, type ConsistencyResult } from '../src/qc/consistency';
import { dawidSkene, annotatorAccuracy } from '../src/qc/stats/dawid-skene';
import { classModelOf, toClassVotes, type BatchFit } from '../src/store/reliability';
import { decideByRisk, planBatchRisks, type Disposition } from '../src/qc/disposition';
import { resolvePolicy } from '../src/qc/policy';
import { calibration } from '../src/qc/stats/calibration';
import { fitRecalibration, IDENTITY, type Recalibration, type ReviewedEstimate } from '../src/qc/stats/recalibration';
import type { SampleRisk } from '../src/qc/risk';
import { prng } from '../src/util/prng';
import { auroc, coverageAtErrorRate, majorityVote } from './qc-metrics';
import { crowdlab } from './cleanlab';

const BATCH = 500;
/** Batches the recalibration has to learn from before the steady-state figures are counted. */
const WARM_UP = 4;

interface Decided {
  disposition: Disposition;
  risk: SampleRisk;
}

interface Item {
  truth: string;
  votes: string[];
  annotators: string[];
}

const CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];

/** Three of each image's real votes, drawn without replacement, given to three of 30 anonymous annotator ids. */
function realItems(counts: number[][], seed: number): Item[] {
  const r = prng(seed);
  return counts.map((row) => {
    const pool = row.flatMap((n, k) => Array<string>(n).fill(CLASSES[k]!));
    const votes: string[] = [];
    for (let i = 0; i < 3; i++) votes.push(pool.splice(Math.floor(r() * pool.length), 1)[0]!);
    const ann = new Set<string>();
    while (ann.size < 3) ann.add(`h-${Math.floor(r() * 30)}`);
    return { truth: CLASSES[row.indexOf(Math.max(...row))]!, votes, annotators: [...ann] };
  });
}

/**
 * The control: the same images and truths, votes from 30 annotators who err independently at their own
 * rate (the real crowd's overall error rate, spread over annotators), into the classes the real crowd
 * confused that image with. Independent-error models are right about these; recalibration must not cost them coverage.
 */
function independentItems(counts: number[][], seed: number): Item[] {
  const r = prng(seed);
  const total = counts.reduce((s, row) => s + row.reduce((a, b) => a + b, 0), 0);
  const wrongVotes = counts.reduce((s, row) => s + row.reduce((a, b) => a + b, 0) - Math.max(...row), 0);
  const meanError = wrongVotes / total;
  const errorOf = Array.from({ length: 30 }, () => meanError * (0.25 + 1.5 * r()));
  return counts.map((row) => {
    const t = row.indexOf(Math.max(...row));
    const ann = new Set<number>();
    while (ann.size < 3) ann.add(Math.floor(r() * 30));
    const others = row.map((n, k) => (k === t ? 0 : n + 0.1));
    const votes = [...ann].map((a) => {
      if (r() >= errorOf[a]!) return CLASSES[t]!;
      let u = r() * others.reduce((x, y) => x + y, 0);
      const k = others.findIndex((w) => (u -= w) < 0);
      return CLASSES[k < 0 ? (t + 1) % 10 : k]!;
    });
    return { truth: CLASSES[t]!, votes, annotators: [...ann].map((a) => `h-${a}`) };
  });
}

/**
 * Snow et al. 2008's textual-entailment judgments as assembled by Brendan O'Connor (`rte/rte.anno.csv` of
 * github.com/edwinrobots/bayesian_combination_tutorial2, from QCFLOW_RTE_CSV): 760 items, 1–5 Yes/No
 * judgments each from 45 persistent worker ids (two of them answering at chance on 1,060 of the 2,040
 * judgments), truth the gold `value`. A small, messy crowd: ids persist, spammers included.
 */
function rteItems(csv: string): Item[] {
  const lines = parseCsv(csv);
  const header = lines[0]!;
  const col = (name: string): number => header.indexOf(name);
  const byItem = new Map<string, Item>();
  for (const row of lines.slice(1)) {
    if (row.length < header.length) continue;
    const it = byItem.get(row[col('id')]!) ?? { truth: row[col('value')] === 'TRUE' ? 'yes' : 'no', votes: [], annotators: [] };
    // A worker's second judgment of the same item (none here) would not be a second voter.
    if (it.annotators.includes(row[col('!amt_worker_ids')]!)) continue;
    it.votes.push(row[col('!hypothesis')] === 'Yes' ? 'yes' : 'no');
    it.annotators.push(row[col('!amt_worker_ids')]!);
    byItem.set(row[col('id')]!, it);
  }
  return [...byItem.values()];
}

/** RFC 4180 CSV: quoted fields may hold commas, doubled quotes and newlines. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i++; } else if (c === '"') quoted = false; else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') { row.push(field); field = ''; } else if (c === '\n') { row.push(field); rows.push(row); row = []; field = ''; } else if (c !== '\r') field += c;
  }
  if (field || row.length) { row.push(field); rows.push(row); }
  return rows;
}

export function realCrowdBench(): void {
  const file = process.env.QCFLOW_CIFAR10H_COUNTS;
  if (!file || !existsSync(file)) {
    console.log(JSON.stringify({ bench: 'qc.real-crowd', skipped: 'set QCFLOW_CIFAR10H_COUNTS to the CIFAR-10H counts as JSON (see bench/real-crowd.ts)' }));
    return;
  }
  const counts = JSON.parse(readFileSync(file, 'utf8')) as number[][];
  for (const seed of [5, 6, 7]) crowdRun(realItems(counts, seed), `real votes, seed ${seed}`);
  crowdRun(independentItems(counts, 5), 'control: independent errors into the same confusions, seed 5');
  const rte = process.env.QCFLOW_RTE_CSV;
  if (rte && existsSync(rte)) crowdRun(rteItems(readFileSync(rte, 'utf8')), 'Snow et al. 2008 RTE: 1–5 Yes/No judgments per item, 45 persistent workers', ['yes', 'no'], 100);
}

function crowdRun(items: Item[], data: string, classes = CLASSES, batch = BATCH): void {
  const voteLists = items.map((it) => it.votes.map((v, k) => ({ annotator: it.annotators[k]!, value: v })));
  const ds = dawidSkene(voteLists.map((v) => toClassVotes(classes, v)), classes);
  const fit: BatchFit = { classes, classPrior: ds.classPrior, confusion: ds.confusion, weights: Object.fromEntries(Object.keys(ds.confusion).map((a) => [a, annotatorAccuracy(ds.confusion[a]!, ds.classPrior)])), items: items.length, iterations: ds.iterations };
  const model = classModelOf(fit);
  // QCFLOW_BENCH_POLICY: a project policy (JSON) to judge the same votes under, e.g. another maxSampleRisk.
  const policy = resolvePolicy(JSON.parse(process.env.QCFLOW_BENCH_POLICY ?? '{}') as Record<string, unknown>);
  const results = items.map((it, i) => checkConsistency({ annotations: voteLists[i]!.map((v) => ({ annotator: v.annotator, labels: { classes: [v.value] } })), payload: {}, ontology: { classes }, policy: policy.layer2, weights: fit.weights, classPosterior: model(voteLists[i]!), classModel: model }));
  const right = items.map((it, i) => results[i]!.consensus.classes?.classes[0] === it.truth);

  /** Layer 5 over samples `from`..`to` as one batch under `recal`. */
  const decide = (from: number, to: number, recal: Recalibration): Decided[] => {
    const ids = Array.from({ length: to - from }, (_, k) => from + k);
    const rows = ids.map((i) => ({ id: String(i), risk: results[i]!.risk, modelP: null, eligible: results[i]!.blocking.length === 0 }));
    const plan = planBatchRisks(rows, policy, classes.length, recal);
    return ids.map((i) => {
      const risk = plan.risks.get(String(i))!;
      const res: ConsistencyResult = results[i]!;
      return { risk, disposition: decideByRisk({ sampleId: String(i), layer1Passed: true, blocking: res.blocking, risk, threshold: plan.threshold, overBudget: plan.overBudget.has(String(i)), policy }).disposition };
    });
  };

  const raw = decide(0, items.length, IDENTITY);
  const sequential: Decided[] = [];
  const reviewed: ReviewedEstimate[] = [];
  const perBatch: number[] = [];
  let recal = IDENTITY;
  for (let from = 0; from < items.length; from += batch) {
    const decided = decide(from, Math.min(items.length, from + batch), recal);
    decided.forEach((d, k) => {
      // A reviewer finds the labels wrong exactly when the consensus is not the truth.
      if (d.disposition === 'review') reviewed.push({ p: d.risk.raw?.primary ?? d.risk.primary, contested: d.risk.contested ?? false, wrong: !right[from + k] });
    });
    const acc = decided.map((d, k) => ({ d, ok: right[from + k]! })).filter((x) => x.d.disposition === 'accepted');
    perBatch.push(+(acc.filter((x) => !x.ok).length / Math.max(1, acc.length)).toFixed(4));
    sequential.push(...decided);
    recal = fitRecalibration(reviewed);
  }

  const summary = (ds: Decided[], offset = 0): Record<string, unknown> => {
    const ok = (i: number): boolean => right[offset + i]!;
    const accepted = ds.map((d, i) => ({ d, i })).filter(({ d }) => d.disposition === 'accepted');
    const clean = ds.filter((_, i) => ok(i)).length;
    return {
      samples: ds.length, coverage: +(accepted.length / ds.length).toFixed(4), acceptedErrorRate: +(accepted.filter(({ i }) => !ok(i)).length / accepted.length).toFixed(4),
      predictedErrorOfAccepted: +(accepted.reduce((s, { d }) => s + d.risk.primary, 0) / accepted.length).toFixed(4),
      cleanNotAccepted: +(ds.filter((d, i) => ok(i) && d.disposition !== 'accepted').length / clean).toFixed(4),
      ece: +calibration(ds.map((d) => d.risk.primary), ds.map((_, i) => !ok(i))).ece.toFixed(4),
      dispositions: ds.reduce((m, d) => ({ ...m, [d.disposition]: (m[d.disposition] ?? 0) + 1 }), {} as Record<string, number>),
    };
  };
  const line = (l: { a: number; b: number }): { a: number; b: number } => ({ a: +l.a.toFixed(3), b: +l.b.toFixed(3) });
  const annotators = [...new Set(items.flatMap((it) => it.annotators))].sort();
  const sequentialRisk = sequential.map((d) => d.risk.primary);
  const split21 = items.map((it, i) => ({ it, i })).filter(({ it }) => new Set(it.votes).size === 2);
  const risk = results.map((x) => x.risk.primary);
  console.log(JSON.stringify({
    bench: 'qc.real-crowd', data, truth: 'the ~51-vote majority of CIFAR-10H', samples: items.length, auditShare: policy.auditShare,
    targetErrorRate: policy.fusion.risk.targetErrorRate,
    consensusAccuracy: +(right.filter(Boolean).length / items.length).toFixed(4), majorityVote: +(items.filter((it) => majorityVote(it.votes) === it.truth).length / items.length).toFixed(4),
    auroc: +auroc(risk, right.map((x) => !x)).toFixed(4),
    // The best coverage any threshold on this ranking reaches at ≤ 0.5% wrong, chosen knowing the truth.
    coverageAt005: +coverageAtErrorRate(risk, right.map((x) => !x), 0.005).toFixed(4),
    // 2–1 splits: independent-error models (one-coin, Dawid–Skene) think them nearly always right.
    split21: { n: split21.length, wrong: split21.filter(({ i }) => !right[i]).length, meanPredicted: +(split21.reduce((s, { i }) => s + risk[i]!, 0) / split21.length).toFixed(4) },
    raw: summary(raw),
    recalibrated: {
      ...summary(sequential),
      afterWarmUp: summary(sequential.slice(WARM_UP * batch), WARM_UP * batch),
      coverageAt005: +coverageAtErrorRate(sequentialRisk, right.map((x) => !x), 0.005).toFixed(4),
      acceptedErrorRatePerBatch: perBatch,
      fit: { uncontested: line(recal.uncontested), contested: line(recal.contested), reviews: recal.reviews, overturned: recal.overturned },
    },
    // The peer on the same votes: CROWDLAB without a classifier (CIFAR-10H ships votes, not images).
    cleanlab: crowdlab({
      classes, annotators, truth: items.map((it) => classes.indexOf(it.truth)),
      labels: items.map((it) => annotators.map((a) => { const k = it.annotators.indexOf(a); return k >= 0 ? classes.indexOf(it.votes[k]!) : null; })),
    }),
  }));
}
