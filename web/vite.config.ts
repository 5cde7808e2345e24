import { fileURLToPath } from 'node:url';
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

const root = fileURLToPath(new URL('.', import.meta.url));

// The server serves dist/web itself (SPA fallback, long-cached /assets), so the build is all there is:
// no dev server is part of the workflow, and no external resource may be referenced (CSP is self-only).
export default defineConfig({
  root,
  base: '/',
  plugins: [react()],
  build: {
    outDir: fileURLToPath(new URL('../dist/web', import.meta.url)),
    emptyOutDir: true,
    assetsDir: 'assets',
    // The CSP forbids inline scripts: the module preload polyfill would be inlined.
    modulePreload: { polyfill: false },
    sourcemap: false,
    target: 'es2022',
  },
});
