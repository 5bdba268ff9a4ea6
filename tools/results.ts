/**
 * The committed results table (bench/results/all-results.csv) and the docs' tables generated
 * from it. The schema and the generator: bench/core/results-table/.
 *
 *   npm run results -- append bench/results/distill-quick-….json bench/results/kernel-….json
 *   npm run results -- export report.json [--no-header]   # the rows as CSV on stdout
 *   npm run results -- docs                               # regenerate the docs' tables:
 *                                                         # docs/mnist-benchmark.md (distill),
 *                                                         # docs/kernel-benchmark.md (kernel,
 *                                                         # vocab), docs/top-k-teachers.md (topk)
 *   npm run results -- plot                               # regenerate docs/vocab-sweep.svg
 *   npm run results -- check                              # exit 1 if a table or the plot is stale
 *
 * Exit status: 0 done (check: all current); 1 an error or, for check, a stale table or plot.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { Command } from 'commander';
import {
  reportResultRows,
  resultsDocs,
  staleResultsSections,
  toResultsCsv,
  updateResultsSections,
  type ResultRow,
} from '../bench/core/results-table/index.js';
import { writeFileAtomic } from '../bench/node/lib/results.js';
import {
  appendResultsFile,
  readResultsFile,
  renderVocabPlotSvg,
  RESULTS_FILE,
  VOCAB_PLOT_FILE,
} from '../bench/node/results-file.js';

/** `f()`, an error it throws prefixed with the file it concerns. */
function about<T>(file: string, f: () => T): T {
  try {
    return f();
  } catch (err) {
    throw new Error(`${file}: ${err instanceof Error ? err.message : String(err)}`, {
      cause: err,
    });
  }
}

/** The rows of the reports (JSON files from npm run bench / bench:kernel, or the page's). */
function rowsOfReports(files: readonly string[]): ResultRow[] {
  return files.flatMap((file) =>
    about(file, () => reportResultRows(JSON.parse(readFileSync(file, 'utf8')))),
  );
}

const program = new Command()
  .name('results')
  .description("The accumulated results table and the docs' tables generated from it");

program
  .command('append')
  .description('append the rows of benchmark reports (JSON) to the table, skipping duplicates')
  .argument('<report.json...>', 'reports from npm run bench, npm run bench:kernel or the page')
  .option('--table <path>', 'the results table', RESULTS_FILE)
  .action((files: string[], opts: { table: string }) => {
    const rows = rowsOfReports(files);
    const added = appendResultsFile(opts.table, rows);
    console.log(
      `${opts.table}: ${added} new row(s) of ${rows.length}` +
        (added < rows.length ? ` (${rows.length - added} already there)` : ''),
    );
    if (added > 0) console.log('then: npm run results -- docs');
  });

program
  .command('export')
  .description("print the reports' rows as CSV, in the table's schema")
  .argument('<report.json...>', 'reports from npm run bench, npm run bench:kernel or the page')
  .option('--no-header', 'rows only (to paste under an existing table)')
  .action((files: string[], opts: { header: boolean }) => {
    process.stdout.write(toResultsCsv(rowsOfReports(files), { header: opts.header }));
  });

program
  .command('docs')
  .description("regenerate the docs' result tables from the table")
  .option('--table <path>', 'the results table', RESULTS_FILE)
  .action((opts: { table: string }) => {
    const rows = readResultsFile(opts.table);
    for (const { file, sections } of resultsDocs()) {
      const before = about(file, () => readFileSync(file, 'utf8'));
      const after = about(file, () => updateResultsSections(before, rows, sections));
      if (after === before) {
        console.log(`${file}: up to date`);
      } else {
        writeFileAtomic(file, after);
        console.log(`${file}: result tables regenerated from ${opts.table}`);
      }
    }
  });

program
  .command('plot')
  .description("regenerate the vocabulary sweep's plot (SVG) from the table")
  .option('--table <path>', 'the results table', RESULTS_FILE)
  .option('--out <path>', 'the SVG file', VOCAB_PLOT_FILE)
  .action(async (opts: { table: string; out: string }) => {
    const svg = await renderVocabPlotSvg(readResultsFile(opts.table));
    if (svg === null) {
      console.log(`${opts.table}: no complete vocabulary sweep; ${opts.out} not written`);
      return;
    }
    if (existsSync(opts.out) && readFileSync(opts.out, 'utf8') === svg) {
      console.log(`${opts.out}: up to date`);
      return;
    }
    mkdirSync(dirname(opts.out), { recursive: true });
    writeFileAtomic(opts.out, svg);
    console.log(`${opts.out}: regenerated from ${opts.table}`);
  });

program
  .command('check')
  .description(
    "exit 1 when the docs' result tables or the sweep's plot differ from what docs and plot would write",
  )
  .option('--table <path>', 'the results table', RESULTS_FILE)
  .option('--plot <path>', 'the SVG plot', VOCAB_PLOT_FILE)
  .action(async (opts: { table: string; plot: string }) => {
    const rows = readResultsFile(opts.table);
    for (const { file, sections } of resultsDocs()) {
      const stale = about(file, () =>
        staleResultsSections(readFileSync(file, 'utf8'), rows, sections),
      );
      if (stale.length > 0) {
        console.error(
          `${file}: generated section(s) ${stale.join(', ')} differ from ${opts.table}; ` +
            'run: npm run results -- docs',
        );
        process.exitCode = 1;
      } else {
        console.log(`${file}: result tables match ${opts.table}`);
      }
    }
    const svg = await renderVocabPlotSvg(rows);
    const current = existsSync(opts.plot) ? readFileSync(opts.plot, 'utf8') : null;
    if (svg !== current) {
      console.error(
        svg === null
          ? `${opts.plot}: exists but ${opts.table} holds no complete vocabulary sweep`
          : `${opts.plot}: differs from ${opts.table}; run: npm run results -- plot`,
      );
      process.exitCode = 1;
    } else if (svg !== null) {
      console.log(`${opts.plot}: matches ${opts.table}`);
    }
  });

try {
  await program.parseAsync();
} catch (err) {
  console.error(`results: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  process.exit(1);
}
