/**
 * A model version's lifecycle. A version moves forward one stage at a time, may step back from canary
 * (a rollout rolled back) and may be archived from anywhere but archived; nothing returns from archived
 * (register a new version instead), so what was retired stays retired in every audit.
 */
export const STAGES = ['registered', 'validated', 'canary', 'production', 'archived'] as const;
export type Stage = (typeof STAGES)[number];

const ALLOWED: Record<Stage, Stage[]> = {
  registered: ['validated', 'archived'],
  validated: ['canary', 'archived'],
  canary: ['production', 'validated', 'archived'],
  production: ['archived'],
  archived: [],
};

export function isStage(s: string): s is Stage {
  return (STAGES as readonly string[]).includes(s);
}

/** Why `from → to` is not allowed, naming what is; undefined when it is. */
export function transitionProblem(from: Stage, to: Stage): string | undefined {
  if (ALLOWED[from].includes(to)) return undefined;
  const next = ALLOWED[from];
  return `a ${from} version cannot become ${to}; ${next.length ? `from ${from} it can become ${next.join(' or ')}` : 'an archived version stays archived (register a new version)'}`;
}

/** Aliases name a version of one model; `production` is moved by promotion, others by hand. */
export const ALIAS_PATTERN = /^[a-z][a-z0-9_-]{0,62}$/;
