/** Deterministic object keys: a retried write lands on the same key, so it changes nothing twice. */
export const stagingKey = (project: string, batchId: string): string => `staging/${project}/${batchId}.jsonl`;

export const inlineMediaKey = (project: string, sampleId: string, index: number, ext: string): string =>
  `raw/${project}/${sampleId}/${index}${ext}`;

export const releasePrefix = (project: string, version: string): string => `releases/${project}/${version}`;

/**
 * The media types a sample may carry inline: what reviewers look at or listen to. Anything a browser
 * would run (text/html, image/svg+xml, …) is refused at ingest, so an upload can never act in a
 * reviewer's browser.
 */
const EXT: Record<string, string> = {
  'image/png': '.png', 'image/jpeg': '.jpg', 'image/webp': '.webp', 'image/gif': '.gif',
  'audio/wav': '.wav', 'audio/mpeg': '.mp3', 'text/plain': '.txt', 'application/json': '.json',
};
export const MEDIA_TYPES = Object.keys(EXT);

export function extensionFor(contentType: string): string {
  return EXT[contentType] ?? '.bin';
}

/** The type to serve an object as, from its key's extension: one of MEDIA_TYPES, else opaque bytes. */
export function servedTypeOf(key: string): string {
  const ext = /\.[a-z0-9]+$/i.exec(key)?.[0]?.toLowerCase();
  return Object.entries(EXT).find(([, e]) => e === ext || (ext === '.jpeg' && e === '.jpg'))?.[0] ?? 'application/octet-stream';
}

/** Project ids appear in object keys, workflow ids and URLs. */
export const PROJECT_ID = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/** Release versions appear in object keys and workflow ids (v1, v2, … or a name of the same alphabet). */
export const RELEASE_VERSION = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Batch ids appear in workflow ids and object keys, so they are restricted to a safe alphabet. */
export const BATCH_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/**
 * Why a sample's media key cannot be used, or undefined: a key must lie under the sample's own project
 * (`raw/{project}/…`), with no `.`/`..` or empty segments and no backslashes. Anything else could make a
 * reviewer of this project read another project's data (a release, a staging file) through a presigned URL.
 */
export function mediaKeyProblem(project: string, key: string): string | undefined {
  const prefix = `raw/${project}/`;
  if (!key.startsWith(prefix)) return `must lie under ${prefix} (this project's media)`;
  if (key.includes('\\') || key.split('/').slice(2).some((seg) => seg === '' || seg === '.' || seg === '..')) return 'must not contain empty, "." or ".." segments or backslashes';
  return undefined;
}
