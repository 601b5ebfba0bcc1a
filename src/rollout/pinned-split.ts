import { createHash } from 'node:crypto';
import { OpenFeature, type Client } from '@openfeature/server-sdk';
import { FlagProvider } from './flag-provider';
import type { Arm } from './bucketing';

/** A gray release's split as a batch pinned it when it left the queue (Layer3Plan.rollout). */
export interface PinnedSplit {
  flag: string;
  salt: string;
  arms: Arm[];
}

/** Who a layer-3 evaluation is about: the sample id is the unit that is bucketed. */
export interface SplitContext {
  project: string;
  sampleId: string;
  annotators: string[];
}

/**
 * Layer 3 asks OpenFeature which arm scores a sample. The provider it asks serves the split the batch
 * pinned, not the flag as it is now, so a retried or replayed batch gets the same arms however the flag
 * moved since (a later batch pins the moved flag). Each distinct pinned split is bound to an OpenFeature
 * domain of its own, once per process; a rollout has a handful (one per ramp step).
 */
export class PinnedSplits {
  private readonly clients = new Map<string, Client>();

  private clientOf(split: PinnedSplit): Client {
    const domain = `qcflow-pinned-split:${createHash('sha256').update(JSON.stringify([split.flag, split.salt, split.arms])).digest('hex').slice(0, 24)}`;
    let client = this.clients.get(domain);
    if (!client) {
      OpenFeature.setProvider(domain, new FlagProvider([{ key: split.flag, salt: split.salt, arms: split.arms, enabled: true, defaultVariant: 'control' }]));
      client = OpenFeature.getClient(domain);
      this.clients.set(domain, client);
    }
    return client;
  }

  /**
   * The sample's arm. A split the batch pinned was checked when it was pinned; should an evaluation still
   * fail, OpenFeature answers the default (control), the same in every call of the batch, so the sample is
   * scored once, by the control.
   */
  async armOf(split: PinnedSplit, c: SplitContext): Promise<string> {
    return this.clientOf(split).getStringValue(split.flag, 'control', { targetingKey: c.sampleId, project: c.project, annotators: c.annotators });
  }
}
