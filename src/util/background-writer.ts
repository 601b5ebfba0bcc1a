/**
 * Items queue up and one call writes everything queued, in the background: while the database is busy with
 * one write, the next items gather into the next, so the producer never waits on it and a slow database gets
 * fewer, larger writes. A failed write is thrown by the next push and by flush.
 */
export class BackgroundWriter<T> {
  private queued: T[] = [];
  private draining: Promise<void> | undefined;
  private failure: { error: unknown } | undefined;

  constructor(private readonly write: (items: T[]) => Promise<void>) {}

  push(items: T[]): void {
    if (this.failure) throw this.failure.error;
    this.queued.push(...items);
    void this.start();
  }

  /** Resolves once everything pushed is written; throws the first write's error. */
  async flush(): Promise<void> {
    while (this.draining || (this.queued.length > 0 && !this.failure)) await this.start();
    if (this.failure) throw this.failure.error;
  }

  private start(): Promise<void> {
    this.draining ??= this.drain()
      .catch((error: unknown) => { this.failure ??= { error }; })
      .finally(() => { this.draining = undefined; });
    return this.draining;
  }

  private async drain(): Promise<void> {
    while (this.queued.length > 0) {
      const chunk = this.queued;
      this.queued = [];
      await this.write(chunk);
    }
  }
}
