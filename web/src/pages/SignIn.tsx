import { useState, type FormEvent } from 'react'
import { Navigate, useLocation, useNavigate } from 'react-router'
import { useMutation } from '@tanstack/react-query'
import { api, ApiError, buildURL, explain } from '../api/client'
import type { CodeSent, VerifyResult } from '../api/types'
import { useAuth } from '../lib/auth'
import { saveSession } from '../lib/session'
import { Button, Field, inputClass } from '../components/ui'
import { Logo } from '../components/Logo'

type Step = 'email' | 'code' | 'apiKey'

function message(err: unknown): string {
  if (err instanceof ApiError) {
    if (err.code === 'INVALID_CODE') return 'That code is wrong, expired or used up. Check it, or ask for a new one.'
    // evp answers 403 to a right code of a suspended or inactive account.
    if (err.status === 403) return 'This account is suspended or inactive. Ask an admin to reactivate it.'
    if (err.code === 'RATE_LIMITED') return `Too many attempts. ${explain(err).hint}`
    if (err.status === 503) return 'evp cannot send sign-in codes: mail is not configured. In embedded mode the code is written to evp\u2019s log.'
    if (err.status === 404) return 'This evp has no email sign-in yet. Use an API key instead.'
    if (err.code === 'VALIDATION_ERROR') return err.message
    if (err.code === 'INVALID_API_KEY') return err.message
  }
  const e = explain(err)
  return `${e.title}. ${e.hint}`
}

export function SignIn() {
  const { session, endedBecause } = useAuth()
  const navigate = useNavigate()
  const loc = useLocation()
  const from = (loc.state as { from?: string } | null)?.from ?? '/'
  const [step, setStep] = useState<Step>('email')
  const [email, setEmail] = useState('')
  const [code, setCode] = useState('')
  const [key, setKey] = useState('')
  const [sentTo, setSentTo] = useState('')

  const request = useMutation({
    mutationFn: (addr: string) => api<CodeSent>('/api/auth/request-code', { method: 'POST', body: { email: addr }, anonymous: true }),
    onSuccess: (_d, addr) => {
      setSentTo(addr)
      setCode('')
      setStep('code')
    },
  })
  const verify = useMutation({
    mutationFn: () => api<VerifyResult>('/api/auth/verify', { method: 'POST', body: { email: sentTo, code }, anonymous: true }),
    onSuccess: (r) => {
      saveSession({ kind: 'jwt', token: r.token, user: r.user })
      navigate(from, { replace: true })
    },
  })
  const checkKey = useMutation({
    mutationFn: async (k: string) => {
      // An API key may read the metrics: check it against a route that requires one.
      let res: Response
      try {
        res = await fetch(buildURL('/api/metrics/ingestion'), { headers: { 'x-api-key': k } })
      } catch {
        throw new ApiError(0, 'NETWORK_ERROR', 'evp did not answer. Is it running?')
      }
      if (res.status === 401) throw new ApiError(401, 'INVALID_API_KEY', 'evp does not know this key, or it was revoked or has expired.')
      if (!res.ok) throw new ApiError(res.status, `HTTP_${res.status}`, `evp answered ${res.status}`)
    },
    onSuccess: (_d, k) => {
      saveSession({ kind: 'apiKey', key: k })
      navigate(from, { replace: true })
    },
  })

  if (session) return <Navigate to={from} replace />

  const onEmail = (e: FormEvent) => {
    e.preventDefault()
    request.mutate(email.trim())
  }
  const onCode = (e: FormEvent) => {
    e.preventDefault()
    verify.mutate()
  }
  const onKey = (e: FormEvent) => {
    e.preventDefault()
    checkKey.mutate(key.trim())
  }

  return (
    <main className="flex min-h-screen items-center justify-center px-4 py-10">
      <div className="w-full max-w-sm">
        <div className="mb-6 text-center">
          <Logo className="mx-auto mb-3 h-12 w-12" />
          <h1 className="text-2xl font-semibold tracking-tight">Sign in to evp</h1>
          <p className="mt-1 text-sm text-muted">Events, analytics and the pipeline's health, live.</p>
        </div>
        {endedBecause === 'expired' && (
          <div role="status" className="mb-4 rounded-lg border border-warn/50 bg-warn/10 p-3 text-sm">
            Your session has ended. Sign in again.
          </div>
        )}
        <div className="rounded-xl border border-line bg-panel p-5 shadow-sm">
          {step === 'email' && (
            <form onSubmit={onEmail} className="flex flex-col gap-4" aria-label="Email sign-in">
              <Field label="Email" htmlFor="email">
                <input id="email" type="email" required autoComplete="email" autoFocus className={inputClass} value={email} onChange={(e) => setEmail(e.target.value)} placeholder="you@example.com" />
              </Field>
              {request.isError && (
                <p role="alert" className="text-sm text-bad">
                  {message(request.error)}
                </p>
              )}
              <Button type="submit" variant="primary" disabled={request.isPending || !email.trim()}>
                {request.isPending ? 'Sending…' : 'Send sign-in code'}
              </Button>
            </form>
          )}
          {step === 'code' && (
            <form onSubmit={onCode} className="flex flex-col gap-4" aria-label="Enter code">
              <p className="text-sm text-muted">
                We sent a 6-digit code to <strong className="text-ink">{sentTo}</strong>. Running evp locally? The code is in evp's log (a line with "sign-in code").
              </p>
              <Field label="6-digit code" htmlFor="code">
                <input
                  id="code"
                  inputMode="numeric"
                  autoComplete="one-time-code"
                  pattern="[0-9]{6}"
                  maxLength={6}
                  required
                  autoFocus
                  className={`${inputClass} text-center font-mono text-xl tracking-[0.5em]`}
                  value={code}
                  onChange={(e) => setCode(e.target.value.replace(/\D/g, '').slice(0, 6))}
                />
              </Field>
              {verify.isError && (
                <p role="alert" className="text-sm text-bad">
                  {message(verify.error)}
                </p>
              )}
              <Button type="submit" variant="primary" disabled={verify.isPending || code.length !== 6}>
                {verify.isPending ? 'Checking…' : 'Sign in'}
              </Button>
              <div className="flex justify-between text-sm">
                <button type="button" className="text-muted underline hover:text-ink" onClick={() => setStep('email')}>
                  Use another email
                </button>
                <button type="button" className="text-muted underline hover:text-ink" disabled={request.isPending} onClick={() => request.mutate(sentTo)}>
                  Send a new code
                </button>
              </div>
            </form>
          )}
          {step === 'apiKey' && (
            <form onSubmit={onKey} className="flex flex-col gap-4" aria-label="API key sign-in">
              <p className="text-sm text-muted">An API key opens Analytics and Live, read-only. Create one with <code>evp apikey create --name NAME</code>.</p>
              <Field label="API key" htmlFor="apikey">
                <input id="apikey" type="password" required autoComplete="off" className={`${inputClass} font-mono`} value={key} onChange={(e) => setKey(e.target.value)} placeholder="evp_…" />
              </Field>
              {checkKey.isError && (
                <p role="alert" className="text-sm text-bad">
                  {message(checkKey.error)}
                </p>
              )}
              <Button type="submit" variant="primary" disabled={checkKey.isPending || !key.trim()}>
                {checkKey.isPending ? 'Checking…' : 'Use this key'}
              </Button>
            </form>
          )}
        </div>
        <p className="mt-4 text-center text-sm">
          {step === 'apiKey' ? (
            <button type="button" className="text-muted underline hover:text-ink" onClick={() => setStep('email')}>
              Sign in with email instead
            </button>
          ) : (
            <button type="button" className="text-muted underline hover:text-ink" onClick={() => setStep('apiKey')}>
              Use an API key instead
            </button>
          )}
        </p>
      </div>
    </main>
  )
}
