// Runs before every test file (vitest `setupFiles`): every test must make at least one
// assertion, so a test whose body returns early, or loops over nothing, fails instead of
// passing without having checked anything. A test that is not to run is skipped through
// vitest (`test.skipIf`, `ctx.skip()`), which the summary counts.
import { beforeEach, expect } from 'vitest';

beforeEach(() => {
  expect.hasAssertions();
});
