import { useState } from 'react'
import { NavLink, Outlet, useLocation } from 'react-router'
import { navItems } from '../lib/nav'
import { useAuth } from '../lib/auth'
import { allows } from '../lib/roles'
import { applyTheme, loadTheme, type Theme } from '../lib/theme'
import { Logo } from './Logo'
import { PageBoundary } from './PageBoundary'
import { Badge, Button } from './ui'

export function Layout() {
  const { session, role, user, signOut } = useAuth()
  const [theme, setTheme] = useState<Theme>(() => loadTheme())
  const loc = useLocation()
  // The phone menu is open on the page it was opened on: following a link closes it.
  const [menuOn, setMenuOn] = useState<string | null>(null)
  const menuOpen = menuOn === loc.pathname

  const items = navItems.filter((n) => session && allows(role, n.need) && (!n.user || session.kind === 'jwt'))
  const linkClass = ({ isActive }: { isActive: boolean }) =>
    `block rounded-lg px-3 py-2 text-sm font-medium ${isActive ? 'bg-accent text-accent-ink' : 'text-muted hover:bg-raised hover:text-ink'}`

  return (
    <div className="min-h-screen md:grid md:grid-cols-[14rem_1fr]">
      <a href="#main" className="sr-only focus:not-sr-only focus:absolute focus:top-2 focus:left-2 focus:z-50 focus:rounded focus:bg-panel focus:p-2">
        Skip to content
      </a>
      <header className="sticky top-0 z-30 border-b border-line bg-panel md:flex md:h-screen md:flex-col md:border-r md:border-b-0">
        <div className="flex items-center justify-between gap-2 px-4 py-3">
          <NavLink to="/" className="flex items-center gap-2 font-semibold tracking-tight">
            <Logo />
            <span>evp</span>
          </NavLink>
          <Button variant="ghost" className="md:hidden" aria-expanded={menuOpen} aria-controls="main-nav" onClick={() => setMenuOn(menuOpen ? null : loc.pathname)}>
            {menuOpen ? 'Close' : 'Menu'}
          </Button>
        </div>
        <nav id="main-nav" aria-label="Main" className={`${menuOpen ? 'block' : 'hidden'} px-3 pb-3 md:block md:flex-1`}>
          <ul className="flex flex-col gap-1">
            {items.map((n) => (
              <li key={n.to}>
                <NavLink to={n.to} end={n.to === '/'} className={linkClass}>
                  {n.label}
                </NavLink>
              </li>
            ))}
          </ul>
        </nav>
        <div className={`${menuOpen ? 'block' : 'hidden'} border-t border-line px-4 py-3 text-sm md:block`}>
          {session && (
            <div className="mb-3">
              <div className="truncate font-medium" title={user?.email}>
                {user?.email ?? 'API key session'}
              </div>
              <div className="mt-1 flex items-center gap-2">
                <Badge tone="accent">{session.kind === 'jwt' ? role : 'API key (read-only)'}</Badge>
              </div>
            </div>
          )}
          <label htmlFor="theme" className="text-xs text-muted">
            Theme
          </label>
          <select
            id="theme"
            value={theme}
            onChange={(e) => {
              const t = e.target.value as Theme
              setTheme(t)
              applyTheme(t)
            }}
            className="mt-1 mb-3 block w-full rounded-lg border border-control bg-raised px-2 py-1.5 text-sm"
          >
            <option value="system">System</option>
            <option value="dark">Dark</option>
            <option value="light">Light</option>
          </select>
          <div className="flex flex-wrap gap-2">
            {session && (
              <Button onClick={signOut} className="w-full">
                Sign out
              </Button>
            )}
            <a href="/docs" className="text-xs text-muted underline hover:text-ink">
              API docs
            </a>
          </div>
        </div>
      </header>
      <main id="main" tabIndex={-1} className="min-w-0 px-4 py-6 md:px-8">
        <PageBoundary resetKey={loc.pathname}>
          <Outlet />
        </PageBoundary>
      </main>
    </div>
  )
}
