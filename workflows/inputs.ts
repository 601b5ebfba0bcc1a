import { BATCH_ID, PROJECT_ID, RELEASE_VERSION } from '../src/ingest/keys';

/**
 * Checks of what reaches a workflow from outside (the Temporal UI, an upstream system): each returns what
 * is wrong, naming the field and the rule, or undefined. Pure, so the workflows run them deterministically.
 * A bad start input fails the workflow at once; a bad signal is counted and reported, never thrown (a
 * throwing handler fails every later workflow task and jams the intake).
 */
type Problem = string | undefined;

/** The patch id behind which workflows check their inputs (histories from before replay without it). */
export const CHECK_INPUTS = 'check-inputs';

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function projectProblem(v: unknown, field = 'project'): Problem {
  if (typeof v !== 'string' || !PROJECT_ID.test(v)) return `${field} ${JSON.stringify(v) ?? 'undefined'} must match ${PROJECT_ID} (lower-case letters, digits, - and _)`;
  return undefined;
}

export function intakeInputProblem(input: unknown): Problem {
  if (!isObject(input)) return 'input must be an object like {"project": "demo"}';
  const extra = Object.keys(input).filter((k) => !['project', 'maxHistoryEvents', 'maxConcurrentBatches', 'state'].includes(k));
  if (extra.length) return `input has unknown field ${extra.map((k) => JSON.stringify(k)).join(', ')} (expected project, maxHistoryEvents, maxConcurrentBatches)`;
  for (const k of ['maxHistoryEvents', 'maxConcurrentBatches'] as const) {
    const v = input[k];
    if (v !== undefined && (typeof v !== 'number' || !Number.isInteger(v) || v < 1)) return `${k} must be a positive integer`;
  }
  return projectProblem(input.project);
}

export function releaseInputProblem(input: unknown): Problem {
  if (!isObject(input)) return 'input must be an object like {"project": "demo", "version": "v3"}';
  if (typeof input.version !== 'string' || !RELEASE_VERSION.test(input.version) || input.version.includes('..')) {
    return `version ${JSON.stringify(input.version) ?? 'undefined'} must match ${RELEASE_VERSION} without ".."`;
  }
  return projectProblem(input.project);
}

export function batchRefProblem(project: string, ref: unknown): Problem {
  if (!isObject(ref)) return 'submitBatch needs {"batchId": …, "stagingKey": …}';
  if (typeof ref.batchId !== 'string' || !BATCH_ID.test(ref.batchId)) return `submitBatch batchId ${JSON.stringify(ref.batchId) ?? 'undefined'} must match ${BATCH_ID}`;
  const prefix = `staging/${project}/`;
  if (typeof ref.stagingKey !== 'string' || !ref.stagingKey.startsWith(prefix) || ref.stagingKey.split('/').includes('..')) {
    return `submitBatch stagingKey ${JSON.stringify(ref.stagingKey) ?? 'undefined'} must be an object key under ${prefix}`;
  }
  return undefined;
}

/** Inline loads are written to history: a few hundred samples at most (the bulk path is submitBatch). */
export const MAX_INLINE_SAMPLES = 500;

export function samplesProblem(arg: unknown): Problem {
  if (!isObject(arg) || !Array.isArray(arg.samples)) return 'submitSamples needs {"samples": [ … ]}';
  if (arg.samples.length === 0) return 'submitSamples samples is empty';
  if (arg.samples.length > MAX_INLINE_SAMPLES) return `submitSamples carries ${arg.samples.length} samples, more than ${MAX_INLINE_SAMPLES}; stage a JSONL file and send submitBatch instead`;
  if (!arg.samples.every(isObject)) return 'submitSamples samples must be objects (one sample each)';
  return undefined;
}

const VERSION_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\/[A-Za-z0-9][A-Za-z0-9._-]{0,127}\/[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const FLAG_KEY = /^[a-z0-9][a-z0-9._/-]{0,127}$/;

export function rolloutInputProblem(input: unknown): Problem {
  if (!isObject(input)) return 'input must be an object like {"project": "demo", "flag": "layer3.sentiment", "candidate": "default/sentiment/2-int8"}';
  const known = ['project', 'flag', 'candidate', 'steps', 'minPerArm', 'margin', 'alpha', 'checkSeconds'];
  const extra = Object.keys(input).filter((k) => !known.includes(k));
  if (extra.length) return `input has unknown field ${extra.map((k) => JSON.stringify(k)).join(', ')} (expected ${known.join(', ')})`;
  if (typeof input.flag !== 'string' || !FLAG_KEY.test(input.flag)) return `flag ${JSON.stringify(input.flag) ?? 'undefined'} must match ${FLAG_KEY}`;
  if (typeof input.candidate !== 'string' || !VERSION_ID.test(input.candidate)) return `candidate ${JSON.stringify(input.candidate) ?? 'undefined'} must be a version id tenant/name/version`;
  const steps = input.steps;
  if (steps !== undefined && (!Array.isArray(steps) || steps.length < 2 || steps.some((s, i) => typeof s !== 'number' || !(s > 0 && s <= 1) || (i > 0 && s <= (steps[i - 1] as number))) || steps[steps.length - 1] !== 1)) {
    return 'steps must be two or more increasing shares in (0, 1] ending at 1, like [0.05, 0.25, 0.5, 1]';
  }
  for (const [k, lo, hi] of [['minPerArm', 1, 1e9], ['margin', 0, 0.5], ['alpha', 1e-6, 0.5], ['checkSeconds', 1, 86400]] as const) {
    const v = input[k];
    if (v !== undefined && (typeof v !== 'number' || !(v >= lo && v <= hi))) return `${k} must be a number in [${lo}, ${hi}]`;
  }
  return projectProblem(input.project);
}
