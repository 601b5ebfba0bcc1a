/** One problem a QC layer found, addressed by JSON pointer into the sample and named by the rule that caught it. */
export interface Finding {
  layer: 1 | 2 | 3 | 4 | 5;
  pointer: string;
  rule: string;
  message: string;
}
