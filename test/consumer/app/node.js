/**
 * Node entry: trains on Dawn's WebGPU adapter and prints the result as one JSON line after
 * `RESULT `. The exit status starts at 1 and the process ends with an explicit exit: an await
 * that leaves the event loop empty would otherwise end it silently, and Dawn's threads could
 * keep it alive.
 */
/* global process, console */
import './webgpu-node.js';
import { distill } from './train.js';

process.exitCode = 1;
try {
  const result = await distill();
  console.log(`RESULT ${JSON.stringify(result)}`);
  process.exit(0);
} catch (err) {
  console.error(err instanceof Error ? err.stack : err);
  process.exit(1);
}
