/**
 * SQL expression for a sample's annotations as `[{annotator, labels}]` in submission order (`[]` when none);
 * use with the sample aliased `s`. Layers 1 and 2 read annotations through it so they see the same shape.
 */
export const ANNOTATIONS_OF_S = `COALESCE((SELECT jsonb_agg(jsonb_build_object('annotator', a.annotator, 'labels', a.labels) ORDER BY a.ordinal)
                            FROM annotations a WHERE a.sample_id = s.id), '[]'::jsonb)`;
