import { ApplicationFailure } from '@temporalio/activity';
import { recordBatchFinding } from '../src/store/batches';
import { listResamples, markNotified } from '../src/store/resamples';
import { type ActivityDeps, type BatchKey, BAD_INPUT, batchPolicy, heartbeat, requireProject } from './deps';

const PER_REQUEST = 500;

export function resampleActivities(deps: ActivityDeps) {
  return {
    /**
     * POSTs the batch's not-yet-notified resample requests to the project's webhook, 500 per request, marking
     * each page once the receiver answers 2xx. The Idempotency-Key header lets a receiver drop a page it saw
     * before a crash. 5xx, 408, 429 and network errors retry; other 4xx do not (the receiver refuses them).
     */
    async notifyResamples(input: BatchKey): Promise<{ notified: number; webhook: boolean }> {
      const project = await requireProject(deps, input.project);
      const url = (await batchPolicy(deps, input, project)).resampleWebhook;
      if (!url) return { notified: 0, webhook: false };
      let notified = 0;
      for (;;) {
        const page = await listResamples(deps.pool, { project: input.project, batchId: input.batchId, limit: PER_REQUEST, unnotified: true });
        if (page.items.length === 0) break;
        const body = JSON.stringify({
          event: 'qcflow.resample_requested', project: input.project, batchId: input.batchId,
          samples: page.items.map((r) => ({ sampleId: r.sampleId, externalId: r.externalId, reasons: r.reasons })),
        });
        let res: Response;
        try {
          res = await fetch(url, {
            method: 'POST', body, signal: AbortSignal.timeout(10_000),
            headers: { 'content-type': 'application/json', 'idempotency-key': `${input.project}/${input.batchId}/${page.items[0]!.sampleId}` },
          });
        } catch (err) {
          throw new Error(`resample webhook ${url} unreachable: ${(err as Error).message}; it is retried`);
        }
        if (!res.ok) {
          const retryable = res.status >= 500 || res.status === 408 || res.status === 429;
          const message = `resample webhook ${url} answered ${res.status}${retryable ? '; it is retried' : '; fix the receiver or qcPolicy.resampleWebhook, then list requests with: qcflow resamples --project ' + input.project}`;
          throw ApplicationFailure.create({ type: retryable ? 'WebhookUnavailable' : BAD_INPUT, message, nonRetryable: !retryable });
        }
        await markNotified(deps.pool, page.items.map((r) => r.sampleId));
        notified += page.items.length;
        heartbeat({ notified });
      }
      deps.log.info({ project: input.project, batchId: input.batchId, notified, url }, 'resample webhook notified');
      return { notified, webhook: true };
    },

    /** Records a problem of the whole batch (shown by `qcflow status`) without failing it. */
    async recordBatchFinding(input: BatchKey & { source: string; rule: string; message: string }): Promise<void> {
      await recordBatchFinding(deps.pool, input);
    },
  };
}
