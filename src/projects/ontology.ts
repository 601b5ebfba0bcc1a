/** A project's label vocabulary: what layer 2 checks annotations against. */
export interface Ontology {
  classes?: string[];
  exclusive?: string[][];
  attributes?: Record<string, string[]>;
  /** Whether an annotation may give several classes (default: single-label). */
  multiLabel?: boolean;
  /** Entity types of spans and sequence tags (B-PER → PER); unchecked when absent. */
  entities?: string[];
}
