// ESLint 9 flat config: `npm run lint`, run by `npm test` before vitest.
// Lines are at most 100 columns (a code pane beside its equation shows about that at 1440 px);
// typescript-eslint's recommended rules catch real mistakes; unused names may start with `_`.
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

const unused = {
  argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_',
};

export default defineConfig(
  { ignores: ['dist/', 'node_modules/', '.astro/', 'checkpoints/', 'public/'] },
  js.configs.recommended,
  tseslint.configs.recommended,
  {
    files: ['**/*.ts', '**/*.mjs', '**/*.js'],
    languageOptions: { globals: { console: 'readonly', process: 'readonly' } },
    rules: {
      'max-len': ['error', { code: 100, tabWidth: 2 }],
      '@typescript-eslint/no-unused-vars': ['error', unused],
    },
  },
  // tests may describe long expectations on one line
  { files: ['tests/**/*.ts'], rules: { 'max-len': 'off' } },
);
