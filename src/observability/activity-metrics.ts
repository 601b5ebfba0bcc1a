import type { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { ActivityInterceptors } from '@temporalio/worker';
import { BAD_INPUT } from '../../activities/deps';
import { observeActivity } from './activity-outcomes';
import { metrics } from './metrics';

/** Times every activity and turns its result into QC metrics (see observeActivity). For Worker.create's interceptors. */
export function activityMetrics(ctx: Context): ActivityInterceptors {
  const activity = ctx.info.activityType;
  return {
    inbound: {
      async execute(input, next) {
        const end = metrics.activitySeconds.startTimer({ activity });
        try {
          const result = await next(input);
          end({ outcome: 'ok' });
          const o = observeActivity(activity, result);
          for (const s of o.samples ?? []) if (s.n > 0) metrics.qcSamples.inc({ layer: s.layer, outcome: s.outcome }, s.n);
          if (o.batchSeconds !== undefined) metrics.batchSeconds.observe(o.batchSeconds);
          if (o.release) {
            metrics.releaseRows.observe(o.release.rows);
            metrics.releaseBytes.observe(o.release.bytes);
          }
          if (o.decayAlerts !== undefined) metrics.decayAlerts.set(o.decayAlerts);
          return result;
        } catch (err) {
          end({ outcome: err instanceof ApplicationFailure && err.type === BAD_INPUT ? 'bad_input' : 'error' });
          throw err;
        }
      },
    },
  };
}
