/** Browser entry: leaves the result (or the error) in `window.__consumerResult`. */
/* global window */
import { distill } from './train.js';

/** @type {{ __consumerResult?: unknown }} */
const target = /** @type {any} */ (window);
distill().then(
  (result) => (target.__consumerResult = result),
  (err) => (target.__consumerResult = { error: String(err instanceof Error ? err.stack : err) }),
);
