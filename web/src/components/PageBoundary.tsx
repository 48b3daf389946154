import { Component, type ReactNode } from 'react'
import { Button, ErrorState } from './ui'

/**
 * chunkFailed reports whether err is a page's code that could not be loaded: evp did not
 * answer, or it was upgraded since the tab opened and the old file is gone. Browsers word it
 * differently (Chromium, Firefox, Safari).
 */
export function chunkFailed(err: unknown): boolean {
  const msg = err instanceof Error ? err.message : String(err)
  return /dynamically imported module|Importing a module script failed|error loading dynamically imported module/i.test(msg)
}

/**
 * PageBoundary shows what went wrong when a page fails to render, instead of a blank page,
 * and clears when the address changes (resetKey). A page whose code failed to load offers a
 * reload: asking again in the same tab would get the same failure.
 */
export class PageBoundary extends Component<{ children: ReactNode; resetKey: string }, { error: unknown }> {
  state = { error: null as unknown }
  static getDerivedStateFromError(error: unknown) {
    return { error }
  }
  componentDidUpdate(prev: { resetKey: string }) {
    if (prev.resetKey !== this.props.resetKey && this.state.error) this.setState({ error: null })
  }
  render() {
    const { error } = this.state
    if (error && chunkFailed(error)) {
      return (
        <div role="alert" className="rounded-xl border border-bad/50 bg-bad/10 p-4" data-testid="error-state">
          <div className="font-semibold text-bad">This page could not be loaded</div>
          <div className="mt-1 text-sm text-ink">evp did not answer, or it was updated since this tab was opened. Reload to get the current dashboard.</div>
          <Button className="mt-3" variant="primary" onClick={() => window.location.reload()}>
            Reload
          </Button>
        </div>
      )
    }
    if (error) return <ErrorState error={error} onRetry={() => this.setState({ error: null })} />
    return this.props.children
  }
}
