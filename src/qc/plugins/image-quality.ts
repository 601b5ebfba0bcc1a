import { loadSharp } from '../../util/sharp';
import type { Finding } from '../findings';
import { pluginConfigParser } from './types';
import type { PluginResult, QcPlugin } from './types';

export interface ImageQualityConfig {
  /** Variance of the Laplacian below which an image is blurred (on 0–255 grey levels). */
  minSharpness: number;
  darkLevel: number;
  brightLevel: number;
  /** Share of pixels at or below darkLevel (at or above brightLevel) that makes an image under- (over-) exposed. */
  maxDarkShare: number;
  maxBrightShare: number;
  /** Images are measured at most this many pixels on a side, so cost does not grow with camera resolution. */
  maxSide: number;
}

export interface ImageStats {
  width: number;
  height: number;
  sharpness: number;
  darkShare: number;
  brightShare: number;
}

/** Variance of the 4-neighbour Laplacian over interior pixels: low when edges are soft (blur). */
export function laplacianVariance(grey: Uint8Array | Buffer, width: number, height: number): number {
  if (width < 3 || height < 3) return 0;
  let sum = 0;
  let sumSq = 0;
  let n = 0;
  for (let y = 1; y < height - 1; y++) {
    const row = y * width;
    for (let x = 1; x < width - 1; x++) {
      const i = row + x;
      const l = grey[i - 1]! + grey[i + 1]! + grey[i - width]! + grey[i + width]! - 4 * grey[i]!;
      sum += l;
      sumSq += l * l;
      n++;
    }
  }
  const mean = sum / n;
  return sumSq / n - mean * mean;
}

export async function measureImage(bytes: Buffer, cfg: Pick<ImageQualityConfig, 'darkLevel' | 'brightLevel' | 'maxSide'>): Promise<ImageStats> {
  const { data, info } = await (await loadSharp())(bytes)
    .greyscale()
    .resize(cfg.maxSide, cfg.maxSide, { fit: 'inside', withoutEnlargement: true })
    .raw()
    .toBuffer({ resolveWithObject: true });
  let dark = 0;
  let bright = 0;
  for (const v of data) {
    if (v <= cfg.darkLevel) dark++;
    else if (v >= cfg.brightLevel) bright++;
  }
  return { width: info.width, height: info.height, sharpness: laplacianVariance(data, info.width, info.height), darkShare: dark / data.length, brightShare: bright / data.length };
}

/** Blur (variance of the Laplacian) and under/over-exposure (grey-level histogram) of every image of a sample. */
export const imageQualityPlugin: QcPlugin<ImageQualityConfig> = {
  id: 'image-quality',
  description: 'blur by variance of the Laplacian; under/over-exposure by histogram (sharp decodes)',
  layer: 2,
  needsMedia: true,
  parseConfig: pluginConfigParser<ImageQualityConfig>('image-quality', {
    type: 'object',
    additionalProperties: false,
    properties: {
      minSharpness: { type: 'number', minimum: 0, default: 100 },
      darkLevel: { type: 'integer', minimum: 0, maximum: 255, default: 16 },
      brightLevel: { type: 'integer', minimum: 0, maximum: 255, default: 239 },
      maxDarkShare: { type: 'number', minimum: 0, maximum: 1, default: 0.5 },
      maxBrightShare: { type: 'number', minimum: 0, maximum: 1, default: 0.5 },
      maxSide: { type: 'integer', minimum: 16, default: 512 },
    },
  }),
  async run(batch, { config }) {
    const out: PluginResult[] = [];
    for (const s of batch) {
      const findings: Finding[] = [];
      const stats: Array<ImageStats & { key: string }> = [];
      let score = 1;
      for (const [i, m] of s.media.entries()) {
        const pointer = `/media/${i}`;
        if (!m.bytes) continue;
        let st: ImageStats;
        try {
          st = await measureImage(m.bytes, config);
        } catch (err) {
          findings.push({ layer: 2, pointer, rule: 'image.undecodable', message: `${m.key} could not be decoded as an image: ${(err as Error).message}` });
          score = 0;
          continue;
        }
        stats.push({ key: m.key, ...st });
        if (st.sharpness < config.minSharpness) {
          findings.push({ layer: 2, pointer, rule: 'image.blur', message: `${m.key} looks blurred: Laplacian variance ${st.sharpness.toFixed(1)} < ${config.minSharpness}` });
        }
        if (st.darkShare > config.maxDarkShare) {
          findings.push({ layer: 2, pointer, rule: 'image.underexposed', message: `${m.key} is under-exposed: ${(st.darkShare * 100).toFixed(0)}% of pixels ≤ ${config.darkLevel}` });
        }
        if (st.brightShare > config.maxBrightShare) {
          findings.push({ layer: 2, pointer, rule: 'image.overexposed', message: `${m.key} is over-exposed: ${(st.brightShare * 100).toFixed(0)}% of pixels ≥ ${config.brightLevel}` });
        }
        score = Math.min(score, Math.min(1, st.sharpness / config.minSharpness), 1 - Math.max(0, st.darkShare - config.maxDarkShare), 1 - Math.max(0, st.brightShare - config.maxBrightShare));
      }
      out.push({ sampleId: s.sampleId, findings, score, details: { images: stats } });
    }
    return out;
  },
};
