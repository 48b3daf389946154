import { afterEach, describe, expect, it, vi } from 'vitest'
import { render, screen } from '@testing-library/react'
import userEvent from '@testing-library/user-event'
import { PageBoundary } from './PageBoundary'

function Throws({ error }: { error: Error }): never {
  throw error
}

afterEach(() => vi.restoreAllMocks())

describe('PageBoundary', () => {
  it('offers a reload, not the raw message, when a page’s code fails to load', async () => {
    vi.spyOn(console, 'error').mockImplementation(() => {}) // React reports the caught error
    const reload = vi.fn()
    vi.spyOn(window, 'location', 'get').mockReturnValue({ ...window.location, reload })
    const user = userEvent.setup()
    render(
      <PageBoundary resetKey="/users">
        <Throws error={new TypeError('Failed to fetch dynamically imported module: http://localhost:3001/assets/Users-0sSkNi5T.js')} />
      </PageBoundary>,
    )
    const alert = screen.getByRole('alert')
    expect(alert).toHaveTextContent('This page could not be loaded')
    expect(alert).not.toHaveTextContent('dynamically imported module')
    await user.click(screen.getByRole('button', { name: 'Reload' }))
    expect(reload).toHaveBeenCalledOnce()
  })

  it('shows other errors with a retry', () => {
    vi.spyOn(console, 'error').mockImplementation(() => {})
    render(
      <PageBoundary resetKey="/">
        <Throws error={new Error('boom')} />
      </PageBoundary>,
    )
    expect(screen.getByRole('alert')).toHaveTextContent('boom')
    expect(screen.getByRole('button', { name: 'Try again' })).toBeInTheDocument()
  })
})
