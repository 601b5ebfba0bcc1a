/**
 * The child process of src/quantize/evaluate-isolated.ts: one evaluation, or one model's golden outputs, sent
 * back over IPC. Alone in its process because a model can crash onnxruntime itself (a segfault is not an
 * exception), and that must cost one request, not the process that asked.
 */
import { readFileSync } from 'node:fs';
import { evaluateCandidate, parseGoldenJsonl } from './evaluate';
import { goldenOutputs } from './golden-outputs';
import type { ChildRequest } from './evaluate-isolated';

process.once('message', (req: ChildRequest) => {
  const golden = parseGoldenJsonl(readFileSync(req.golden, 'utf8'));
  // A sign of life after each sample and timed run: the parent's watchdog (evaluate-isolated.ts) reads them.
  const o = { output: req.output, outputs: req.outputs, runs: req.runs, providers: req.providers, progress: () => process.send!({ progress: true }) };
  const work = req.op === 'evaluate' ? evaluateCandidate(req.reference, req.candidate, golden, o) : goldenOutputs(req.model, golden, o);
  work
    .then((value) => process.send!({ value }, () => process.exit(0)))
    .catch((err: unknown) => process.send!({ error: { name: (err as Error).name, message: (err as Error).message } }, () => process.exit(0)));
});
