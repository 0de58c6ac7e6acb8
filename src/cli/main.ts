// Entry of the `cogvideox-fun` command: dispatches to a subcommand and turns any error into one line on stderr
// ("error: …", the stack only with --debug) and an exit code: 0 done, 1 error, 2 bad command line, 130 interrupted.
import * as fs from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { oneLine, UsageError } from './errors.js';
import { generate } from './generate.js';
import { info } from './info.js';
import { MAIN_USAGE } from './usage.js';

function version(): string {
  const pkg = JSON.parse(fs.readFileSync(fileURLToPath(new URL('../../package.json', import.meta.url)), 'utf8')) as { version: string };
  return pkg.version;
}

/** The subcommands: name → runner (argv after the name → exit code). A new command is one line here. */
const COMMANDS: Record<string, (argv: readonly string[]) => Promise<number>> = {
  generate,
  info,
  serve: async (argv) => (await import('./serve.js')).serve(argv), // the server loads only for this command
  train: async (argv) => (await import('./train.js')).trainCommand(argv),
  worker: async (argv) => (await import('./work.js')).workerCommand(argv), // BullMQ loads only for this command
};

export async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  const debug = rest.includes('--debug');
  try {
    const run = command !== undefined && Object.prototype.hasOwnProperty.call(COMMANDS, command) ? COMMANDS[command] : undefined;
    if (run) return await run(rest);
    switch (command) {
      case 'help':
      case '-h':
      case '--help':
        process.stdout.write(MAIN_USAGE);
        return 0;
      case '--version':
      case '-v':
        process.stdout.write(`${version()}\n`);
        return 0;
      case undefined:
        process.stderr.write(MAIN_USAGE);
        return 2;
      default:
        throw new UsageError(`unknown command "${command}" (commands: ${Object.keys(COMMANDS).join(', ')}; see --help)`);
    }
  } catch (e) {
    const usage = e instanceof UsageError;
    process.stderr.write(`error: ${oneLine(e)}\n`);
    if (debug && !usage && e instanceof Error && e.stack) process.stderr.write(`${e.stack}\n`);
    return usage ? 2 : 1;
  }
}

// Run when executed directly (`node --import tsx src/cli/main.ts …` or `node dist/cli/main.js …`).
if (process.argv[1] && import.meta.url === pathToFileURL(fs.realpathSync(process.argv[1])).href) {
  process.exit(await main(process.argv.slice(2)));
}
