// ESLint for the dashboard (npm run lint, part of make web-check): JavaScript's and
// typescript-eslint's recommended rules, and React's hooks rules (rules of hooks,
// exhaustive dependencies and the React Compiler's checks). Warnings fail the run too.
import js from '@eslint/js'
import tseslint from 'typescript-eslint'
import reactHooks from 'eslint-plugin-react-hooks'
import globals from 'globals'
import { defineConfig, globalIgnores } from 'eslint/config'

export default defineConfig([
  globalIgnores(['node_modules/', 'test-results/', 'src/api/schema.d.ts']),
  {
    files: ['src/**/*.{ts,tsx}', 'vite.config.ts'],
    extends: [js.configs.recommended, tseslint.configs.recommended, reactHooks.configs.flat.recommended],
    languageOptions: { globals: globals.browser },
  },
  {
    // The browser test and the scripts run in Node; the browser test's page.evaluate
    // callbacks run in the page.
    files: ['e2e/**/*.mjs', 'scripts/**/*.mjs', 'sdk/**/*.mjs', 'eslint.config.js'],
    extends: [js.configs.recommended],
    languageOptions: { globals: { ...globals.node } },
  },
  { files: ['e2e/**/*.mjs', 'sdk/browser.mjs'], languageOptions: { globals: { ...globals.browser } } },
])
