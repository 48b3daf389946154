import { Navigate, Route, Routes, useLocation } from 'react-router'
import { lazy, Suspense, type ReactNode } from 'react'
import type { Role } from './api/types'
import { useAuth } from './lib/auth'
import { allows } from './lib/roles'
import { Layout } from './components/Layout'
import { SignIn } from './pages/SignIn'
import { NotFound } from './pages/NotFound'
import { Loading } from './components/ui'

// Pages load on first visit: the sign-in page does not carry the charts.
const Analytics = lazy(() => import('./pages/Analytics').then((m) => ({ default: m.Analytics })))
const Events = lazy(() => import('./pages/Events').then((m) => ({ default: m.Events })))
const Live = lazy(() => import('./pages/Live').then((m) => ({ default: m.Live })))
const ApiKeys = lazy(() => import('./pages/ApiKeys').then((m) => ({ default: m.ApiKeys })))
const DeadLetters = lazy(() => import('./pages/DeadLetters').then((m) => ({ default: m.DeadLetters })))
const Users = lazy(() => import('./pages/Users').then((m) => ({ default: m.Users })))

function Guard({ need, children }: { need: Role; children: ReactNode }) {
  const { session, role } = useAuth()
  const loc = useLocation()
  if (!session) return <Navigate to="/sign-in" replace state={{ from: loc.pathname + loc.search }} />
  if (!allows(role, need) || (need !== 'VIEWER' && session.kind !== 'jwt')) return <Navigate to="/" replace />
  return <Suspense fallback={<Loading />}>{children}</Suspense>
}

export function App() {
  return (
    <Routes>
      <Route path="/sign-in" element={<SignIn />} />
      <Route element={<Layout />}>
        <Route index element={<Guard need="VIEWER"><Analytics /></Guard>} />
        <Route path="events" element={<Guard need="VIEWER"><Events /></Guard>} />
        <Route path="live" element={<Guard need="VIEWER"><Live /></Guard>} />
        <Route path="api-keys" element={<Guard need="OPERATOR"><ApiKeys /></Guard>} />
        <Route path="dead-letters" element={<Guard need="OPERATOR"><DeadLetters /></Guard>} />
        <Route path="users" element={<Guard need="ADMIN"><Users /></Guard>} />
        <Route path="*" element={<Guard need="VIEWER"><NotFound /></Guard>} />
      </Route>
    </Routes>
  )
}
