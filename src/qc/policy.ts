import { parserWithDefaults } from './schema-defaults';

/**
 * A project's QC policy: every threshold and weight the layers use, with documented defaults.
 * The schema below is the single source of those defaults (ajv fills them in) and of the errors a bad
 * policy gets, which name the field and the rule.
 */
export interface QcPolicy {
  layer2: {
    /** Boxes of different annotators are the same object when their IoU reaches this. */
    boxMatchIou: number;
    /** Matched boxes agree on geometry when every pair's IoU reaches this; below it is a geometry_conflict. */
    boxAgreeIou: number;
    /** Span offsets compared as characters, or as the whitespace tokens of the text at `spanTextPointer`. */
    spanUnit: 'char' | 'token';
    spanTextPointer: string;
    spanMatchIou: number;
    spanAgreeIou: number;
    /** Share of (reliability-weighted) votes the consensus class needs; below it is a class conflict. */
    minClassAgreement: number;
    /**
     * An object (box or span) some annotators drew and others did not: `vote` weighs whether it is there by
     * the annotators' reliabilities, and the doubt counts against the sample; `dontCare` releases it as a
     * don't-care region (`dontCare: true` in the consensus) that is right either way — for scenes full of
     * far, small or half-hidden objects the crowd itself splits on.
     */
    splitObjects: 'vote' | 'dontCare';
    /** Under `dontCare`: more of a sample's objects than this share in doubt, and a person decides (finding dont_care_share). */
    maxDontCareShare: number;
  };
  layer3: {
    /** Model references (`name`, `name@version`, `tenant/name@version`); more than one is an ensemble. None: layer 3 is skipped. */
    models: string[];
    /** How many of the model's labels a disagreement finding names. */
    topK: number;
    /**
     * A gray release: the feature flag (feature_flags) whose arms split the batch's samples between the
     * `control` (the models above) and candidate model references (the other variants). Pinned with the
     * models when a batch leaves the queue, so a ramp moves later batches, never one in flight.
     */
    rollout?: { flag: string };
  };
  layer4: {
    /** Windows in samples (`count`) or seconds (`time`): the short one is "recent", the long one the reference. */
    window: { kind: 'count' | 'time'; short: number; long: number };
    /** Fewer reference samples than this: no comparison, stability 1. */
    minReference: number;
    /** Alert when the short window is worse than the reference by more than this (rates and scores absolute, annotation time relative). */
    thresholds: { l1FailureRate: number; l2Agreement: number; l3MeanScore: number; annotationTimeP50: number };
    /** Share of an alerted annotator's confidently accepted samples sent to review instead. */
    alertReviewShare: number;
  };
  fusion: {
    /**
     * `risk` (default): each sample's probability that its consensus is wrong decides (see src/qc/risk.ts).
     * `linear`: the first wave's weighted sum of layer-3 score, uncertainty and layer-4 stability against
     * accept/review thresholds.
     */
    mode: 'risk' | 'linear';
    risk: {
      /**
       * What the budget counts. `sample`: the share of auto-accepted samples with any wrong primary label.
       * `label`: the share of auto-accepted primary labels (a class, an object, a span) that are wrong —
       * for samples that hold many (a document's 50 entities, a street scene's cars), where 0.5% of samples
       * would mean 0.01% of entities, more than two or three annotators can ever show.
       */
      per: 'sample' | 'label';
      /** Largest expected share of auto-accepted samples (or labels, under `per: label`) with a wrong primary label (class, object, span). */
      targetErrorRate: number;
      /** No sample whose primary labels are wrong with more than this (per label, under `per: label`) is auto-accepted, however clean the rest of its batch. */
      maxSampleRisk: number;
      /**
       * Largest expected share of auto-accepted samples with a wrong attribute. Secondary attributes are
       * noisier than classes, and a reliability-weighted 2–1 vote settles most of them; a project that
       * trains on its attributes as much as on its classes sets this to targetErrorRate.
       */
      attributeErrorRate: number;
      /** A sample whose best class has less posterior than this carries too little information for a reviewer: resample. */
      resampleBelow: number;
      /** How much the layer-3 model's probability counts against the annotators' evidence (1: as one more voter). */
      modelWeight: number;
      /**
       * Most samples a batch sends to people because their risk is too high, as a share of its samples
       * that passed layer 1 (1: no budget). The likeliest wrong are reviewed; the rest go back for more
       * labels (resample, reason review_budget). Audits and alerts are not counted: they measure QC itself.
       */
      reviewBudget: number;
      /**
       * How many of the project's most recent decided reviews recalibrate the risk before a batch is
       * judged (src/qc/stats/recalibration.ts); 0 judges on the annotator models' estimate as it is.
       */
      recalibrationReviews: number;
    };
    weights: { score: number; uncertainty: number; stability: number };
    acceptThreshold: number;
    reviewThreshold: number;
  };
  /** Share of auto-accepted samples also sent to review, chosen from the sample id. */
  auditShare: number;
  review: {
    /** How long a reviewer has for a task before it escalates (the human-task activity's timeout). */
    slaSeconds: number;
    /** Escalations to another reviewer before the task goes to the project's leads. */
    maxEscalations: number;
    /** `round-robin`: each new task is assigned to the next reviewer; `claim`: tasks wait in the queue until claimed. */
    assignment: 'round-robin' | 'claim';
    /** How long a claim holds before the task returns to the queue. */
    claimTtlSeconds: number;
    /**
     * How long after dispatching a review task the workflow checks that it was recorded; a dispatch
     * Temporal marked started but no worker ran is dispatched again (checks back off, doubling).
     */
    dispatchCheckSeconds: number;
    /**
     * How long a reviewer can take a decision back (0: never). The decision takes effect when the window
     * closes, or when the reviewer decides another task (only one's latest decision can be undone).
     */
    undoSeconds: number;
  };
  /** URL that receives a POST with each batch's resample requests. */
  resampleWebhook?: string;
  plugins: Array<{ id: string; config: Record<string, unknown> }>;
}

const unit = { type: 'number', minimum: 0, maximum: 1 } as const;

/** A layer-3 model reference: `name`, `name@version` or `tenant/name@version` (groups: tenant, name, version). */
export const MODEL_REF_PATTERN = '^(?:([a-z0-9][a-z0-9_-]*)/)?([A-Za-z0-9][A-Za-z0-9._-]*)(?:@([A-Za-z0-9][A-Za-z0-9._-]*))?$';

export const QC_POLICY_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    layer2: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        boxMatchIou: { ...unit, default: 0.5 },
        boxAgreeIou: { ...unit, default: 0.75 },
        spanUnit: { enum: ['char', 'token'], default: 'char' },
        spanTextPointer: { type: 'string', pattern: '^(/[^/]+)+$', default: '/text' },
        spanMatchIou: { ...unit, default: 0.5 },
        spanAgreeIou: { ...unit, default: 1 },
        minClassAgreement: { ...unit, default: 1 },
        splitObjects: { enum: ['vote', 'dontCare'], default: 'vote' },
        maxDontCareShare: { ...unit, default: 0.5 },
      },
    },
    layer3: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        // Checked here so a malformed reference is refused at project create, not retried by every batch.
        models: { type: 'array', items: { type: 'string', pattern: MODEL_REF_PATTERN }, maxItems: 5, uniqueItems: true, default: [] },
        topK: { type: 'integer', minimum: 1, maximum: 20, default: 3 },
        rollout: { type: 'object', additionalProperties: false, required: ['flag'], properties: { flag: { type: 'string', pattern: '^[a-z0-9][a-z0-9._/-]{0,127}$' } } },
      },
    },
    layer4: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        window: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            kind: { enum: ['count', 'time'], default: 'count' },
            short: { type: 'integer', minimum: 1, default: 200 },
            long: { type: 'integer', minimum: 2, default: 2000 },
          },
        },
        minReference: { type: 'integer', minimum: 1, default: 50 },
        thresholds: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            l1FailureRate: { ...unit, default: 0.1 },
            l2Agreement: { ...unit, default: 0.1 },
            l3MeanScore: { ...unit, default: 0.15 },
            annotationTimeP50: { ...unit, default: 0.5 },
          },
        },
        alertReviewShare: { ...unit, default: 0.25 },
      },
    },
    fusion: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        mode: { enum: ['risk', 'linear'], default: 'risk' },
        risk: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            per: { enum: ['sample', 'label'], default: 'sample' },
            targetErrorRate: { type: 'number', minimum: 0, maximum: 0.5, default: 0.005 },
            maxSampleRisk: { ...unit, default: 0.05 },
            attributeErrorRate: { type: 'number', minimum: 0, maximum: 0.5, default: 0.02 },
            resampleBelow: { ...unit, default: 0.5 },
            modelWeight: { type: 'number', minimum: 0, maximum: 10, default: 1 },
            reviewBudget: { ...unit, default: 1 },
            recalibrationReviews: { type: 'integer', minimum: 0, maximum: 100000, default: 5000 },
          },
        },
        weights: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            score: { type: 'number', default: 0.6 },
            uncertainty: { type: 'number', default: -0.25 },
            stability: { type: 'number', default: 0.15 },
          },
        },
        acceptThreshold: { ...unit, default: 0.6 },
        reviewThreshold: { ...unit, default: 0.4 },
      },
    },
    auditShare: { ...unit, default: 0.02 },
    review: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        slaSeconds: { type: 'integer', minimum: 1, maximum: 30 * 86400, default: 86400 },
        maxEscalations: { type: 'integer', minimum: 0, maximum: 10, default: 2 },
        assignment: { enum: ['round-robin', 'claim'], default: 'round-robin' },
        claimTtlSeconds: { type: 'integer', minimum: 1, maximum: 86400, default: 900 },
        dispatchCheckSeconds: { type: 'integer', minimum: 1, maximum: 3600, default: 60 },
        undoSeconds: { type: 'integer', minimum: 0, maximum: 600, default: 10 },
      },
    },
    resampleWebhook: { type: 'string', pattern: '^https?://' },
    plugins: {
      type: 'array',
      default: [{ id: 'sequence-labels' }],
      items: {
        type: 'object',
        required: ['id'],
        additionalProperties: false,
        properties: { id: { type: 'string' }, config: { type: 'object', default: {} } },
      },
    },
  },
} as const;


export class PolicyError extends Error {}

const parsePolicy = parserWithDefaults<QcPolicy>(QC_POLICY_SCHEMA, '/qcPolicy', (problems) => new PolicyError(`invalid QC policy: ${problems}`));

/** Validates a stored or submitted policy and fills in defaults; the error names each bad field. */
export function resolvePolicy(raw: unknown): QcPolicy {
  const p = parsePolicy(raw);
  if (p.fusion.reviewThreshold > p.fusion.acceptThreshold) {
    throw new PolicyError(`invalid QC policy: /qcPolicy/fusion/reviewThreshold (${p.fusion.reviewThreshold}) must not exceed acceptThreshold (${p.fusion.acceptThreshold})`);
  }
  if (p.layer2.boxAgreeIou < p.layer2.boxMatchIou || p.layer2.spanAgreeIou < p.layer2.spanMatchIou) {
    throw new PolicyError('invalid QC policy: /qcPolicy/layer2 agree thresholds must be at least the match thresholds');
  }
  if (p.layer4.window.short >= p.layer4.window.long) {
    throw new PolicyError(`invalid QC policy: /qcPolicy/layer4/window/short (${p.layer4.window.short}) must be less than long (${p.layer4.window.long})`);
  }
  return p;
}

/** The policy every project gets when it sets none. */
export const DEFAULT_POLICY: QcPolicy = resolvePolicy({});
