import type { Method, OpQuantizer } from './types';

const registry = new Map<string, OpQuantizer>();

const key = (method: Method, opType: string): string => `${method}\n${opType}`;

export function registerQuantizer(q: OpQuantizer): void {
  if (registry.has(key(q.method, q.opType))) throw new Error(`a ${q.method} quantizer for ${q.opType} is already registered`);
  registry.set(key(q.method, q.opType), q);
}

export function quantizerFor(method: Method, opType: string): OpQuantizer | undefined {
  return registry.get(key(method, opType));
}

/** Op types a method quantizes (what `analyze` reports as applicable). */
export function quantizableOps(method: Method): string[] {
  return [...registry.values()].filter((q) => q.method === method).map((q) => q.opType).sort();
}
