import { defineConfig } from 'vitest/config';

// The browser suite drives one real stack (engine + backend) per file, one file at a time.
export default defineConfig({
  test: {
    include: ['e2e/**/*.test.ts'],
    environment: 'node',
    passWithNoTests: false,
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 180_000,
    // Live updates cross three processes (engine, backend projection, browser).
    expect: { poll: { timeout: 15_000, interval: 100 } },
    reporters: ['default'],
  },
});
