/// <reference types="vitest/config" />
import { defineConfig, loadEnv } from 'vite'
import react from '@vitejs/plugin-react'
import tailwindcss from '@tailwindcss/vite'

// The build goes straight into the Go package that embeds it (internal/dashboard/dist/app);
// only app/ is emptied, the committed dist/README.md stays. `npm run dev` proxies the API to a
// running evp (EVP_URL, default http://localhost:3001), so the dashboard talks to its own
// origin in development as it does when evp serves it.
export default defineConfig(({ mode }) => {
  const env = loadEnv(mode, process.cwd(), '')
  const target = env.EVP_URL || 'http://localhost:3001'
  const proxy = Object.fromEntries(['/api', '/openapi.json', '/metrics', '/docs'].map((p) => [p, { target, changeOrigin: true }]))
  return {
    plugins: [react(), tailwindcss()],
    build: {
      outDir: '../internal/dashboard/dist/app',
      emptyOutDir: true,
      sourcemap: false,
    },
    server: { port: 5173, proxy },
    preview: { proxy },
    test: {
      environment: 'jsdom',
      setupFiles: ['./src/test/setup.ts'],
      include: ['src/**/*.test.{ts,tsx}'],
    },
  }
})
