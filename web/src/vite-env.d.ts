/// <reference types="vite/client" />

interface ImportMetaEnv {
  /** Where evp's API is when the dashboard is hosted elsewhere; empty: the page's own origin. */
  readonly VITE_API_URL?: string
}

interface ImportMeta {
  readonly env: ImportMetaEnv
}
