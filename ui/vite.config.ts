/// <reference types="vitest/config" />
import { defineConfig } from 'vite';

// The dashboard is served by the appliance itself (ui.go embeds dist/), so
// the build is self-contained: no CDN, hashed assets under /assets/.
// `npm run dev` proxies the API to a `foundry serve` on FOUNDRY_URL.
const api = process.env.FOUNDRY_URL ?? 'http://127.0.0.1:8080';

export default defineConfig({
  base: '/',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    assetsDir: 'assets',
    sourcemap: false,
    // The strict Content-Security-Policy of ui.go forbids inline scripts.
    modulePreload: { polyfill: false },
    target: 'es2022',
  },
  server: {
    proxy: {
      '/api': { target: api, changeOrigin: true },
      '/openapi.json': { target: api },
    },
  },
  test: {
    environment: 'jsdom',
    globals: true,
    include: ['src/**/*.test.{ts,tsx}'],
    setupFiles: ['src/test-setup.ts'],
    restoreMocks: true,
    unstubGlobals: true,
  },
});
