import { RELEASE_COLUMNS } from './writers';

export interface QcSummary {
  statusCounts: Record<string, number>;
  rejectedLines: number;
  layer1TopRules: Array<{ rule: string; count: number }>;
}

export interface ManifestFile {
  key: string;
  sha256: string;
  bytes: number;
  rows?: number;
}

export interface Manifest {
  format: 'qcflow.release/v1';
  project: string;
  version: string;
  releaseId: string;
  createdAt: string;
  sampleCount: number;
  files: { jsonl: ManifestFile; arrow: ManifestFile };
  arrowSchema: Array<{ name: string; type: string; nullable: boolean; doc: string }>;
  qcSummary: QcSummary;
}

/** The release's manifest; everything in it comes from stored state, so a rebuilt manifest is byte-identical. */
export function buildManifest(m: Omit<Manifest, 'format' | 'arrowSchema' | 'createdAt'> & { createdAt: Date }): Manifest {
  return {
    format: 'qcflow.release/v1',
    project: m.project,
    version: m.version,
    releaseId: m.releaseId,
    createdAt: m.createdAt.toISOString(),
    sampleCount: m.sampleCount,
    files: m.files,
    arrowSchema: RELEASE_COLUMNS.map((c) => ({ name: c.name, type: String(c.type), nullable: c.nullable, doc: c.doc })),
    qcSummary: m.qcSummary,
  };
}
