import type { Pool } from 'pg';
import { chiSquare } from '../rollout/bucketing';
import { DEFAULT_SEQUENTIAL, rolloutVerdict, type RolloutVerdict } from '../rollout/sequential';
import { loadFlags } from './flags';

export interface ArmOutcome {
  variant: string;
  /** Model versions that scored the arm. */
  models: string[];
  /** Samples the arm's model judged … */
  n: number;
  /** … of which its verdict agreed with the consensus (layer 3 passed). */
  agreed: number;
  /** Samples it could not judge (model errors, refused inputs). */
  failed: number;
  /** Samples of the arm a reviewer decided (approve, correct or reject; resample says nothing) … */
  reviewed: number;
  /**
   * … where the reviewer contradicted the arm's verdict: it agreed with the consensus and the reviewer
   * found the labels wrong, or it disagreed and the reviewer approved them.
   */
  overturned: number;
  /** 95th percentile over the arm's judged samples of onnxruntime's compute time per sample (ms); null before any. */
  latencyP95Ms: number | null;
}

export interface RolloutStatus {
  flag: string;
  arms: ArmOutcome[];
  /** Sample-ratio mismatch: arm sizes against the flag's shares; p < 0.001 means the split is broken. */
  srm: { p: number } | null;
  /** Control against the first candidate arm on agreement, with a 1-point non-inferiority margin. */
  verdict: RolloutVerdict | null;
}

/** Per-arm layer-3 outcomes of a project's gray release (results tagged with the flag by scorePlausibility), and what the statistics say. */
export async function rolloutStatus(pool: Pool, project: string, flag: string, o = { margin: 0.01, minPerArm: 200 }): Promise<RolloutStatus> {
  const { rows } = await pool.query<{ arm: string; models: string[]; n: string; agreed: string; failed: string; reviewed: string; overturned: string; latency_p95: number | null }>(
    `SELECT q.details->>'arm' AS arm, array_agg(DISTINCT q.model_version) AS models,
            count(*) FILTER (WHERE q.score IS NOT NULL) AS n, count(*) FILTER (WHERE q.score IS NOT NULL AND q.passed) AS agreed,
            count(*) FILTER (WHERE q.score IS NULL) AS failed,
            count(*) FILTER (WHERE q.score IS NOT NULL AND r.decision IN ('approve', 'correct', 'reject')) AS reviewed,
            count(*) FILTER (WHERE q.score IS NOT NULL AND ((q.passed AND r.decision IN ('correct', 'reject')) OR (NOT q.passed AND r.decision = 'approve'))) AS overturned,
            percentile_cont(0.95) WITHIN GROUP (ORDER BY (q.details->>'inferenceMs')::float8) AS latency_p95
     FROM qc_results q JOIN samples s ON s.id = q.sample_id
     LEFT JOIN LATERAL (SELECT t.decision FROM review_tasks t WHERE t.sample_id = q.sample_id AND t.status = 'decided' ORDER BY t.round DESC LIMIT 1) r ON true
     WHERE s.project_id = $1 AND q.layer = 3 AND q.details->>'flag' = $2 GROUP BY 1 ORDER BY 1`, [project, flag],
  );
  const arms = rows.map((r) => ({
    variant: r.arm, models: r.models.filter(Boolean), n: Number(r.n), agreed: Number(r.agreed), failed: Number(r.failed),
    reviewed: Number(r.reviewed), overturned: Number(r.overturned), latencyP95Ms: r.latency_p95 === null ? null : +r.latency_p95.toFixed(4),
  }));
  const f = (await loadFlags(pool, [flag]))[0];
  const shares = f ? arms.map((a) => f.arms.find((x) => x.variant === a.variant)?.share ?? 0) : [];
  const total = shares.reduce((x, y) => x + y, 0);
  const srm = f && arms.length > 1 && total > 0 ? { p: chiSquare(arms.map((a) => a.n + a.failed), shares.map((s) => s / total)).p } : null;
  const control = arms.find((a) => a.variant === 'control');
  const candidate = arms.find((a) => a.variant !== 'control');
  const verdict = control && candidate
    ? rolloutVerdict({ n: control.n, successes: control.agreed }, { n: candidate.n, successes: candidate.agreed }, { ...DEFAULT_SEQUENTIAL, ...o })
    : null;
  return { flag, arms, srm, verdict };
}
