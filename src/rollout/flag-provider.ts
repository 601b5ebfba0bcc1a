import {
  ErrorCode, OpenFeatureEventEmitter, ProviderEvents, StandardResolutionReasons,
  type EvaluationContext, type JsonValue, type Provider, type ResolutionDetails,
} from '@openfeature/server-sdk';
import { Client, type ClientConfig, type Notification } from 'pg';
import { listenForFlagChanges, loadFlags, type FlagDefinition } from '../store/flags';
import { armAt, bucketOf, splitProblem } from './bucketing';

/**
 * An OpenFeature provider over flags held in memory: an evaluation is a hash and a lookup. String flags
 * only: a variant names what to use (a model version). The evaluation context's `targetingKey` (the
 * sample id) is the unit that is bucketed (src/rollout/bucketing.ts).
 */
export class FlagProvider implements Provider {
  readonly metadata: { name: string } = { name: 'qcflow-flags' };
  readonly runsOn = 'server' as const;
  readonly events = new OpenFeatureEventEmitter();
  protected flags = new Map<string, FlagDefinition>();

  constructor(flags: FlagDefinition[] = []) {
    this.flags = new Map(flags.map((f) => [f.key, f]));
  }

  /** Replaces the given flags (all when `keys` is undefined) with `loaded`; a flag not loaded disappears. */
  protected replace(loaded: FlagDefinition[], keys?: string[]): void {
    if (!keys) this.flags = new Map(loaded.map((f) => [f.key, f]));
    else {
      for (const k of keys) this.flags.delete(k);
      for (const f of loaded) this.flags.set(f.key, f);
    }
    this.events.emit(ProviderEvents.ConfigurationChanged, { flagsChanged: keys ?? [...this.flags.keys()] });
  }

  async resolveStringEvaluation(flagKey: string, defaultValue: string, context: EvaluationContext): Promise<ResolutionDetails<string>> {
    const flag = this.flags.get(flagKey);
    if (!flag) return { value: defaultValue, reason: StandardResolutionReasons.ERROR, errorCode: ErrorCode.FLAG_NOT_FOUND, errorMessage: `no flag ${flagKey}` };
    if (!flag.enabled) return { value: flag.defaultVariant, variant: flag.defaultVariant, reason: StandardResolutionReasons.DISABLED };
    const problem = splitProblem(flag.arms);
    if (problem) return { value: defaultValue, reason: StandardResolutionReasons.ERROR, errorCode: ErrorCode.PARSE_ERROR, errorMessage: `flag ${flagKey}: ${problem}` };
    const unit = context.targetingKey;
    if (!unit) return { value: defaultValue, reason: StandardResolutionReasons.ERROR, errorCode: ErrorCode.TARGETING_KEY_MISSING, errorMessage: 'bucketing needs a targetingKey (the sample id)' };
    const variant = armAt(flag.arms, bucketOf(flagKey, flag.salt, unit));
    return { value: variant, variant, reason: StandardResolutionReasons.SPLIT, flagMetadata: { salt: flag.salt } };
  }

  async resolveBooleanEvaluation(flagKey: string, defaultValue: boolean): Promise<ResolutionDetails<boolean>> {
    return this.wrongType(flagKey, defaultValue);
  }

  async resolveNumberEvaluation(flagKey: string, defaultValue: number): Promise<ResolutionDetails<number>> {
    return this.wrongType(flagKey, defaultValue);
  }

  async resolveObjectEvaluation<T extends JsonValue>(flagKey: string, defaultValue: T): Promise<ResolutionDetails<T>> {
    return this.wrongType(flagKey, defaultValue);
  }

  private wrongType<T>(flagKey: string, defaultValue: T): ResolutionDetails<T> {
    return { value: defaultValue, reason: StandardResolutionReasons.ERROR, errorCode: ErrorCode.TYPE_MISMATCH, errorMessage: `flag ${flagKey} is a string flag` };
  }
}

/**
 * The flags live in the stack's Postgres (flagd and GO Feature Flag's relay proxy cannot be built here: the
 * Go module proxy serves neither). A LISTEN connection reloads a flag within moments of a change (the
 * table's trigger NOTIFYs its key) and emits ConfigurationChanged.
 */
export class PgFlagProvider extends FlagProvider {
  override readonly metadata = { name: 'qcflow-postgres' };
  private listener: Client | undefined;

  constructor(private readonly connection: ClientConfig) {
    super();
  }

  async initialize(): Promise<void> {
    const client = new Client(this.connection);
    await client.connect();
    client.on('notification', (n: Notification) => void this.reload(n.payload ? [n.payload] : undefined));
    // A dropped connection loses notifications: say so, so the application can recreate the provider.
    client.on('error', (err: Error) => this.events.emit(ProviderEvents.Error, { message: `flag listener lost: ${err.message}` }));
    await listenForFlagChanges(client);
    this.listener = client;
    await this.reload();
  }

  async onClose(): Promise<void> {
    await this.listener?.end();
    this.listener = undefined;
  }

  private async reload(keys?: string[]): Promise<void> {
    if (this.listener) this.replace(await loadFlags(this.listener, keys), keys);
  }
}
