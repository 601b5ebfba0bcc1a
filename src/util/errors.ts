import { rootCause } from '@temporalio/common';

/** The innermost message of a Temporal failure chain (client errors wrap the failure in `cause`). */
export function failureMessage(err: unknown): string {
  const cause = (err as { cause?: unknown } | null)?.cause;
  return rootCause(cause ?? err) ?? String(err);
}
