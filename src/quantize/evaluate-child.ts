/**
 * The child process of evaluateIsolated: one candidate evaluation, its result sent back over IPC. Alone in
 * its process because a candidate can crash onnxruntime itself (a segfault is not an exception), and that
 * must cost one evaluation, not the worker.
 */
import { readFileSync } from 'node:fs';
import { evaluateCandidate, parseGoldenJsonl } from './evaluate';

interface Request {
  reference: string;
  candidate: string;
  golden: string;
  output?: string;
  runs?: number;
  providers?: string[];
}

process.once('message', (req: Request) => {
  evaluateCandidate(req.reference, req.candidate, parseGoldenJsonl(readFileSync(req.golden, 'utf8')), { output: req.output, runs: req.runs, providers: req.providers })
    .then((metrics) => process.send!({ metrics }, () => process.exit(0)))
    .catch((err: unknown) => process.send!({ error: { name: (err as Error).name, message: (err as Error).message } }, () => process.exit(0)));
});
