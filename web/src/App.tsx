import { Navigate, Route, Routes, useLocation } from 'react-router'
import type { ReactNode } from 'react'
import type { Role } from './api/types'
import { useAuth } from './lib/auth'
import { allows } from './lib/roles'
import { Layout } from './components/Layout'
import { SignIn } from './pages/SignIn'
import { Analytics } from './pages/Analytics'
import { Live } from './pages/Live'
import { ApiKeys } from './pages/ApiKeys'
import { DeadLetters } from './pages/DeadLetters'
import { Users } from './pages/Users'
import { NotFound } from './pages/NotFound'

function Guard({ need, children }: { need: Role; children: ReactNode }) {
  const { session, role } = useAuth()
  const loc = useLocation()
  if (!session) return <Navigate to="/sign-in" replace state={{ from: loc.pathname + loc.search }} />
  if (!allows(role, need) || (need !== 'VIEWER' && session.kind !== 'jwt')) return <Navigate to="/" replace />
  return <>{children}</>
}

export function App() {
  return (
    <Routes>
      <Route path="/sign-in" element={<SignIn />} />
      <Route element={<Layout />}>
        <Route index element={<Guard need="VIEWER"><Analytics /></Guard>} />
        <Route path="live" element={<Guard need="VIEWER"><Live /></Guard>} />
        <Route path="api-keys" element={<Guard need="OPERATOR"><ApiKeys /></Guard>} />
        <Route path="dead-letters" element={<Guard need="OPERATOR"><DeadLetters /></Guard>} />
        <Route path="users" element={<Guard need="ADMIN"><Users /></Guard>} />
        <Route path="*" element={<NotFound />} />
      </Route>
    </Routes>
  )
}
