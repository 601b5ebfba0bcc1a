import {
  allHandlersFinished, ApplicationFailure, condition, continueAsNew, patched, proxyActivities, setCurrentDetails, setHandler, startChild,
  rootCause, upsertSearchAttributes, uuid4, WorkflowIdReusePolicy, workflowInfo, log, ParentClosePolicy,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import {
  addCounts, intakeStatsQuery, stageSamplesUpdate, submitBatchSignal, submitSamplesSignal, workflowIds, ZERO_COUNTS,
  type IntakeInput, type IntakeState, type SubmitSamplesArgs,
} from './definitions';
import { batchRefProblem, CHECK_INPUTS, intakeInputProblem, samplesProblem } from './inputs';
import { qcBatch } from './qc-batch';
import { SHORT_ACTIVITY_OPTIONS } from './activity-options';
import { QC_PROJECT, QC_STAGE } from './search-attributes';
import { batchMetadata, countsLine } from './metadata';

const act = proxyActivities<Activities>(SHORT_ACTIVITY_OPTIONS);

const DEFAULT_MAX_CONCURRENT_BATCHES = 4;
const SEEN_WINDOW = 2000;
const DEFAULT_MAX_HISTORY = 10_000;

/**
 * Long-running per project. Signals queue batches (bad ones are counted and reported in stats, never
 * thrown); up to maxConcurrentBatches qcBatch children run at once. Before history grows large it drains
 * running children and handlers, then continues as new with its queue.
 */
export async function projectIntake(input: IntakeInput): Promise<void> {
  // patched: intakes started before inputs and signals were checked replay as they ran (a signal refused
  // today was acted on then); the same marker guards the start check and both signal handlers.
  const checking = (): boolean => patched(CHECK_INPUTS);
  const bad = checking() ? intakeInputProblem(input) : undefined;
  if (bad) throw ApplicationFailure.nonRetryable(bad, 'BadInput');
  // An intake for a project that does not exist fails at its first step, before any submission is taken,
  // instead of running and dropping each one; handlers wait for the check. patched: intakes started before
  // the check replay without it.
  const checkProject = patched('intake-project-exists');
  let projectChecked = !checkProject;
  const state: IntakeState = input.state ?? {
    queue: [],
    seenBatchIds: [],
    stats: { project: input.project, queued: 0, running: 0, completed: 0, failed: 0, duplicateBatches: 0, counts: { ...ZERO_COUNTS }, generation: 0, recentErrors: [] },
  };
  const stats = state.stats;
  const seen = new Set(state.seenBatchIds);
  const enqueue = (batchId: string, stagingKey: string): void => {
    if (seen.has(batchId)) {
      stats.duplicateBatches++;
      return;
    }
    seen.add(batchId);
    state.queue.push({ batchId, stagingKey });
  };

  // A bad signal is reported in stats and dropped; throwing would fail every later workflow task.
  const refuse = (problem: string): void => {
    stats.refusedSignals = (stats.refusedSignals ?? 0) + 1;
    stats.recentErrors = [...stats.recentErrors, `signal refused: ${problem}`].slice(-20);
    log.warn('signal refused', { problem });
  };
  setHandler(submitBatchSignal, (ref: unknown) => {
    const problem = checking() ? batchRefProblem(input.project, ref) : undefined;
    if (problem) return refuse(problem);
    const r = ref as { batchId: string; stagingKey: string };
    enqueue(r.batchId, r.stagingKey);
  });
  setHandler(submitSamplesSignal, async (arg: unknown) => {
    if (!projectChecked) await condition(() => projectChecked);
    if (checking()) {
      const problem = samplesProblem(arg);
      if (problem) return refuse(problem);
    } else if (!Array.isArray((arg as SubmitSamplesArgs).samples) || (arg as SubmitSamplesArgs).samples.length === 0) {
      return; // what the handler did before the check
    }
    const ref = await act.stageInlineSamples({ project: input.project, batchId: `inline-${uuid4()}`, samples: (arg as SubmitSamplesArgs).samples });
    enqueue(ref.batchId, ref.stagingKey);
  });
  // The validator runs before the update is accepted: a refused one is the sender's error, not history.
  setHandler(stageSamplesUpdate, async (arg: SubmitSamplesArgs) => {
    if (!projectChecked) await condition(() => projectChecked);
    const ref = await act.stageInlineSamples({ project: input.project, batchId: `inline-${uuid4()}`, samples: arg.samples });
    enqueue(ref.batchId, ref.stagingKey);
    return ref;
  }, {
    validator: (arg: unknown) => {
      const problem = samplesProblem(arg);
      if (problem) throw new Error(problem);
    },
  });
  setHandler(intakeStatsQuery, () => ({ ...stats, queued: state.queue.length }));
  upsertSearchAttributes([{ key: QC_PROJECT, value: input.project }, { key: QC_STAGE, value: 'intake' }]);
  if (checkProject) {
    try {
      await act.requireIntakeProject({ project: input.project });
    } catch (err) {
      throw ApplicationFailure.nonRetryable(`${rootCause(err) ?? String(err)}; samples sent to this intake were not taken: send them again once the project exists`, 'UnknownProject');
    }
    projectChecked = true;
  }

  const maxHistory = input.maxHistoryEvents ?? DEFAULT_MAX_HISTORY;
  const maxConcurrent = input.maxConcurrentBatches ?? DEFAULT_MAX_CONCURRENT_BATCHES;
  const shouldContinueAsNew = (): boolean => workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > maxHistory;

  const showStats = (): void => setCurrentDetails(`Batches: ${countsLine({ queued: state.queue.length, running: stats.running, completed: stats.completed, failed: stats.failed })}\n\nSamples: ${countsLine({ ...stats.counts })}${stats.recentErrors.length ? `\n\nLast error: ${stats.recentErrors[stats.recentErrors.length - 1]}` : ''}`);
  const runBatch = async (batchId: string, stagingKey: string): Promise<void> => {
    stats.running++;
    showStats();
    try {
      // The model version is fixed when the batch leaves the queue, so a model registered meanwhile waits for the next batch.
      // patched: intakes that were running before this step shipped replay without it (their batches pin their own).
      const layer3 = patched('pin-layer3-at-dequeue') ? await act.pinLayer3Models({ project: input.project }) : undefined;
      const child = await startChild(qcBatch, {
        workflowId: workflowIds.qcBatch(input.project, batchId),
        args: [{ project: input.project, batchId, stagingKey, layer3 }],
        // Re-submitting a batch that already succeeded is a no-op; one that failed may run again.
        workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
        parentClosePolicy: ParentClosePolicy.ABANDON,
        ...batchMetadata(input.project, batchId, stagingKey),
      });
      const counts = await child.result();
      stats.counts = addCounts(stats.counts, counts);
      stats.completed++;
    } catch (err) {
      if (err instanceof Error && err.name === 'WorkflowExecutionAlreadyStartedError') {
        stats.duplicateBatches++;
      } else {
        stats.failed++;
        const message = `${batchId}: ${rootCause(err) ?? String(err)}`;
        stats.recentErrors = [...stats.recentErrors, message].slice(-20);
        log.warn('qc batch failed', { batchId, error: message });
      }
    } finally {
      stats.running--;
      showStats();
    }
  };

  for (;;) {
    await condition(() => (state.queue.length > 0 && stats.running < maxConcurrent) || shouldContinueAsNew());
    if (shouldContinueAsNew()) break;
    const next = state.queue.shift()!;
    void runBatch(next.batchId, next.stagingKey);
  }
  await condition(() => stats.running === 0 && allHandlersFinished());
  await continueAsNew<typeof projectIntake>({
    project: input.project,
    maxHistoryEvents: input.maxHistoryEvents,
    maxConcurrentBatches: input.maxConcurrentBatches,
    state: { queue: state.queue, seenBatchIds: [...seen].slice(-SEEN_WINDOW), stats: { ...stats, generation: stats.generation + 1 } },
  });
}
