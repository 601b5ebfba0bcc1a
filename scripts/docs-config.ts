/** `npm run docs:config`: rewrites docs/operations.md's Configuration table from SETTINGS (src/clients/config.ts). */
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { replaceSettingsTable } from '../src/clients/config';

const file = path.join(__dirname, '..', 'docs', 'operations.md');
const before = readFileSync(file, 'utf8');
const after = replaceSettingsTable(before);
if (after !== before) writeFileSync(file, after);
process.stdout.write(`${path.relative(process.cwd(), file)}: configuration table ${after === before ? 'already up to date' : 'regenerated'}\n`);
