import { useEffect, useState } from 'react'

export type Theme = 'system' | 'light' | 'dark'
const KEY = 'evp.theme'

export function loadTheme(): Theme {
  const t = localStorage.getItem(KEY)
  return t === 'light' || t === 'dark' ? t : 'system'
}

export function applyTheme(t: Theme): void {
  if (t === 'system') {
    document.documentElement.removeAttribute('data-theme')
    localStorage.removeItem(KEY)
  } else {
    document.documentElement.setAttribute('data-theme', t)
    localStorage.setItem(KEY, t)
  }
}

/** The colour scheme in effect: the one picked, or else the system's. */
export function currentScheme(): 'light' | 'dark' {
  const t = document.documentElement.getAttribute('data-theme')
  if (t === 'light' || t === 'dark') return t
  return window.matchMedia?.('(prefers-color-scheme: dark)').matches ? 'dark' : 'light'
}

/**
 * useScheme follows the colour scheme in effect, for what reads the theme's colours once
 * (a canvas chart): a theme picked in the menu, or the system's preference changing.
 */
export function useScheme(): 'light' | 'dark' {
  const [scheme, setScheme] = useState(currentScheme)
  useEffect(() => {
    const update = () => setScheme(currentScheme())
    const mq = window.matchMedia?.('(prefers-color-scheme: dark)')
    mq?.addEventListener('change', update)
    const mo = new MutationObserver(update)
    mo.observe(document.documentElement, { attributes: true, attributeFilter: ['data-theme'] })
    return () => {
      mq?.removeEventListener('change', update)
      mo.disconnect()
    }
  }, [])
  return scheme
}
