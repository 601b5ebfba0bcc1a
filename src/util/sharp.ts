import type sharpType from 'sharp';

/**
 * sharp, loaded on first use: its native binary is built for one platform, and commands that decode no
 * image (`model evaluate` under an emulated ARM CPU, see quantize-other-cpu.test.ts) must load without it.
 */
export async function loadSharp(): Promise<typeof sharpType> {
  return (await import('sharp')).default;
}
