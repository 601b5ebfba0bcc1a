import { readFileSync } from 'node:fs';

/** A refusal the CLI prints as one line (no stack): the message says what was wrong and what to do. */
export class CliError extends Error {
  override name = 'CliError';
}

/** A JSON file the user named; a CliError naming the file and what is wrong with it otherwise. */
export function readJsonFile(file: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new CliError(`cannot read ${what} file ${file}: ${(err as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new CliError(`${what} file ${file} is not valid JSON: ${(err as Error).message}`);
  }
}
