/** One problem a QC layer found, addressed by JSON pointer into the sample and named by the rule that caught it. */
export interface Finding {
  layer: 1 | 2 | 3 | 4 | 5;
  pointer: string;
  rule: string;
  message: string;
  /** Annotators whose labels the finding is about, so a reviewer sees whose work conflicts. */
  annotators?: string[];
  /** The plugin that produced it, when a plugin did. */
  plugin?: string;
}

/** Findings as one line a person reads: `pointer: rule: message; …`. */
export function describeFindings(findings: Finding[]): string {
  return findings.map((f) => `${f.pointer || '/'}: ${f.rule}: ${f.message}`).join('; ');
}
