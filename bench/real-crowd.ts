/**
 * `npm run bench -- real-crowd`: layer 2 and the risk disposition on real human labels — CIFAR-10H
 * (Peterson et al. 2019: ~51 people labelled each CIFAR-10 test image). Three of each image's votes are
 * drawn without replacement and given to a pool of 30 anonymous annotator ids; the truth is the ~51-vote
 * majority. Pure logic, no stack: one Dawid–Skene fit over the set, as one batch. The counts file
 * (`data/cifar10h-counts.npy` of github.com/jcpeterson/cifar-10h, 10000 × 10) is read from
 * QCFLOW_CIFAR10H_COUNTS, converted to JSON (`python3 -c "import numpy,json; json.dump(numpy.load(p).tolist(), open(out,'w'))"`);
 * without it the bench says so and prints nothing else.
 */
import { existsSync, readFileSync } from 'node:fs';
import { checkConsistency } from '../src/qc/consistency';
import { dawidSkene, annotatorAccuracy } from '../src/qc/stats/dawid-skene';
import { classModelOf, toClassVotes, type BatchFit } from '../src/store/reliability';
import { batchThresholds, decideByRisk } from '../src/qc/disposition';
import { resolvePolicy } from '../src/qc/policy';
import { prng } from '../src/util/prng';
import { auroc, coverageAtErrorRate, majorityVote } from './qc-metrics';

export function realCrowdBench(): void {
  const file = process.env.QCFLOW_CIFAR10H_COUNTS;
  if (!file || !existsSync(file)) {
    console.log(JSON.stringify({ bench: 'qc.real-crowd', skipped: 'set QCFLOW_CIFAR10H_COUNTS to the CIFAR-10H counts as JSON (see bench/real-crowd.ts)' }));
    return;
  }
  const counts = JSON.parse(readFileSync(file, 'utf8')) as number[][];
  const classes = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];
  const r = prng(5);
  const items = counts.map((row) => {
    const pool = row.flatMap((n, k) => Array<string>(n).fill(classes[k]!));
    const votes: string[] = [];
    for (let i = 0; i < 3; i++) votes.push(pool.splice(Math.floor(r() * pool.length), 1)[0]!);
    const ann = new Set<string>();
    while (ann.size < 3) ann.add(`h-${Math.floor(r() * 30)}`);
    return { truth: classes[row.indexOf(Math.max(...row))]!, votes, annotators: [...ann] };
  });
  const voteLists = items.map((it) => it.votes.map((v, k) => ({ annotator: it.annotators[k]!, value: v })));
  const ds = dawidSkene(voteLists.map((v) => toClassVotes(classes, v)), classes);
  const fit: BatchFit = { classes, classPrior: ds.classPrior, confusion: ds.confusion, weights: Object.fromEntries(Object.keys(ds.confusion).map((a) => [a, annotatorAccuracy(ds.confusion[a]!, ds.classPrior)])), items: items.length, iterations: ds.iterations };
  const model = classModelOf(fit);
  const policy = resolvePolicy({ auditShare: 0 });
  const results = items.map((it, i) => checkConsistency({ annotations: voteLists[i]!.map((v) => ({ annotator: v.annotator, labels: { classes: [v.value] } })), payload: {}, ontology: { classes }, policy: policy.layer2, weights: fit.weights, classPosterior: model(voteLists[i]!), classModel: model }));
  const threshold = batchThresholds(results.filter((x) => x.blocking.length === 0 && (x.risk.classPosterior ?? 1) >= policy.fusion.risk.resampleBelow).map((x) => x.risk), policy.fusion.risk);
  const d = results.map((x, i) => decideByRisk({ sampleId: String(i), layer1Passed: true, blocking: x.blocking, risk: x.risk, threshold, policy }));
  const right = items.map((it, i) => results[i]!.consensus.classes?.classes[0] === it.truth);
  const acc = d.map((x) => x.disposition === 'accepted');
  const nAcc = acc.filter(Boolean).length;
  const wrongAcc = acc.filter((a, i) => a && !right[i]).length;
  const clean = right.filter(Boolean).length;
  const cleanReview = d.filter((x, i) => right[i] && x.disposition !== 'accepted').length;
  const risk = results.map((x) => x.risk.pWrong);
  const wrongAccepted = items.map((it, i) => ({ it, i })).filter(({ i }) => acc[i] && !right[i]);
  const split21 = items.map((it, i) => ({ it, i })).filter(({ it }) => new Set(it.votes).size === 2);
  console.log(JSON.stringify({
    bench: 'qc.real-crowd', data: 'CIFAR-10H counts, 3 real votes per image, truth = ~51-vote majority', samples: items.length,
    coverage: +(nAcc / items.length).toFixed(4), acceptedErrorRate: +(wrongAcc / nAcc).toFixed(4), cleanNotAccepted: +(cleanReview / clean).toFixed(4),
    consensusAccuracy: +(clean / items.length).toFixed(4), majorityVote: +(items.filter((it) => majorityVote(it.votes) === it.truth).length / items.length).toFixed(4),
    auroc: +auroc(risk, right.map((x) => !x)).toFixed(4), coverageAt005: +coverageAtErrorRate(risk, right.map((x) => !x), 0.005).toFixed(4),
    dispositions: d.reduce((m, x) => ({ ...m, [x.disposition]: (m[x.disposition] ?? 0) + 1 }), {} as Record<string, number>),
    targetErrorRate: policy.fusion.risk.targetErrorRate,
    // Where the estimate is off: 2–1 splits, which independent-error models (one-coin, Dawid–Skene) think
    // nearly always right, and the mean risk they gave the accepted samples.
    wrongAcceptedUnanimous: wrongAccepted.filter(({ it }) => new Set(it.votes).size === 1).length, wrongAccepted: wrongAccepted.length,
    split21: { n: split21.length, wrong: split21.filter(({ i }) => !right[i]).length, accepted: split21.filter(({ i }) => acc[i]).length },
    predictedErrorOfAccepted: +(results.filter((_, i) => acc[i]).reduce((s, x) => s + x.risk.pWrong, 0) / nAcc).toFixed(4),
  }));
}
