// End-to-end test of the dashboard in real Chromium (Debian's /usr/bin/chromium) against a real
// evp. Run by internal/dashboard's TestDashboardInBrowser, which starts evp and passes:
//   EVP_URL          the evp to test, serving the built dashboard
//   EVP_LOG          evp's log file (JSON lines), where embedded mode writes sign-in codes
//   EVP_AUTH         "1" when evp has the email sign-in routes
//   EVP_API_KEY      a key made with `evp apikey create` (used when EVP_AUTH is not "1")
//   SCREENSHOT_DIR   where to save a screenshot of each page
// It prints one line per step and exits non-zero on the first failure.
import { readFile, mkdir } from 'node:fs/promises'
import { chromium } from 'playwright-core'

const base = process.env.EVP_URL
const logFile = process.env.EVP_LOG
const withAuth = process.env.EVP_AUTH === '1'
const shots = process.env.SCREENSHOT_DIR || 'test-results/screenshots'
const chromePath = process.env.CHROMIUM || '/usr/bin/chromium'
if (!base) throw new Error('EVP_URL is not set')

const TIMEOUT = 30_000
const step = (msg) => console.log(`e2e: ${msg}`)
function check(cond, msg) {
  if (!cond) throw new Error(`check failed: ${msg}`)
}

async function until(what, fn, timeout = TIMEOUT) {
  const end = Date.now() + timeout
  let last
  while (Date.now() < end) {
    try {
      const v = await fn()
      if (v) return v
    } catch (err) {
      last = err
    }
    await new Promise((r) => setTimeout(r, 200))
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`)
}

/** The newest sign-in code evp wrote to its log for email. */
async function codeFromLog(email) {
  return until(`a sign-in code for ${email} in evp's log`, async () => {
    const lines = (await readFile(logFile, 'utf8')).split('\n').reverse()
    for (const line of lines) {
      if (!line.includes('sign-in code') || !line.includes(email)) continue
      try {
        const rec = JSON.parse(line)
        if (rec.msg === 'sign-in code' && rec.email === email && /^\d{6}$/.test(String(rec.code))) return String(rec.code)
      } catch {
        const m = line.match(/code=(\d{6})/)
        if (m && line.includes(`email=${email}`)) return m[1]
      }
    }
    return null
  })
}

async function postJSON(path, body, key) {
  const res = await fetch(base + path, { method: 'POST', headers: { 'Content-Type': 'application/json', 'x-api-key': key }, body: JSON.stringify(body) })
  const json = await res.json()
  if (res.status !== 202) throw new Error(`POST ${path}: ${res.status} ${JSON.stringify(json)}`)
  return json.data
}

const browser = await chromium.launch({
  executablePath: chromePath,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
})
await mkdir(shots, { recursive: true })

// Console errors and uncaught exceptions fail the test, except where a step expects them.
const problems = []
let expectFailures = false
function watch(page) {
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return
    if (expectFailures && /Failed to load resource/.test(msg.text())) return
    problems.push(`console error on ${page.url()}: ${msg.text()}`)
  })
  page.on('pageerror', (err) => problems.push(`uncaught exception on ${page.url()}: ${err.message}`))
}
function noProblems(where) {
  check(problems.length === 0, `${where}: ${problems.join('; ')}`)
}

let exitCode = 0
let current = null
let invitedViewer = false
try {
  const context = await browser.newContext({ viewport: { width: 1366, height: 900 } })
  const page = await context.newPage()
  current = page
  page.setDefaultTimeout(TIMEOUT)
  watch(page)
  const shot = (name) => page.screenshot({ path: `${shots}/${name}.png`, fullPage: true })

  // 1. Signed out: every page leads to sign-in.
  await page.goto(base + '/live')
  await page.getByRole('heading', { name: 'Sign in to evp', level: 1 }).waitFor()
  check(new URL(page.url()).pathname === '/sign-in', `signed-out visit to /live ends on /sign-in, not ${page.url()}`)
  await shot('01-sign-in')
  noProblems('sign-in page')
  step('signed out: /live redirects to the sign-in page')

  // 2. Sign in.
  let apiKey = process.env.EVP_API_KEY
  const email = 'admin@example.com'
  if (withAuth) {
    await page.getByLabel('Email', { exact: true }).fill(email)
    await page.getByRole('button', { name: 'Send sign-in code' }).click()
    const codeInput = page.getByLabel('6-digit code', { exact: true })
    await codeInput.waitFor()
    const code = await codeFromLog(email)
    await codeInput.fill(code)
    await page.getByRole('button', { name: 'Sign in' }).click()
    // Back to the page asked for before signing in.
    await page.getByRole('heading', { name: 'Live', level: 1 }).waitFor()
    step(`signed in as ${email} with the code from evp's log, back on /live`)
    // The first user is ADMIN: every page is in the navigation.
    const nav = page.getByRole('navigation', { name: 'Main' })
    for (const name of ['Analytics', 'Live', 'API keys', 'Dead letters', 'Users']) {
      await nav.getByRole('link', { name }).waitFor()
    }
    step('navigation shows every page to an ADMIN')

    // 3. Create an API key in the UI.
    await nav.getByRole('link', { name: 'API keys' }).click()
    await page.getByRole('heading', { name: 'API keys', level: 1 }).waitFor()
    await page.getByLabel('Name', { exact: true }).fill('e2e ingestion')
    await page.getByRole('button', { name: 'Create key' }).click()
    const keyEl = page.getByTestId('new-key-value')
    await keyEl.waitFor()
    apiKey = (await keyEl.textContent()).trim()
    check(/^evp_/.test(apiKey), `the new key starts with evp_: ${apiKey.slice(0, 8)}…`)
    await page.getByText('It will not be shown again').waitFor()
    await page.getByRole('cell', { name: 'e2e ingestion', exact: true }).waitFor()
    await shot('03-api-keys')
    noProblems('API keys page')
    step('created an API key in the UI; it is shown once and listed')

    // Revoke the key `evp apikey create` made, through the confirmation dialog.
    const row = page.getByRole('row').filter({ has: page.getByRole('cell', { name: 'browser-test', exact: true }) })
    await row.getByRole('button', { name: 'Revoke browser-test' }).click()
    const dialog = page.getByRole('dialog')
    await dialog.getByText('This cannot be undone').waitFor()
    await dialog.getByRole('button', { name: 'Revoke key' }).click()
    await row.getByText('revoked').waitFor()
    check((await row.getByRole('button', { name: /Revoke/ }).count()) === 0, 'a revoked key has no Revoke button')
    const refused = await fetch(base + '/api/metrics', { headers: { 'x-api-key': process.env.EVP_API_KEY } })
    check(refused.status === 401 || refused.status === 403, `the revoked key is refused, got ${refused.status}`)
    noProblems('revoking a key')
    step('revoked a key after confirming; evp refuses it')
  } else {
    check(apiKey, 'EVP_API_KEY is set when evp has no email sign-in')
    await page.getByRole('button', { name: 'Use an API key instead' }).click()
    await page.getByLabel('API key', { exact: true }).fill(apiKey)
    await page.getByRole('button', { name: 'Use this key' }).click()
    await page.getByRole('heading', { name: 'Live', level: 1 }).waitFor()
    const nav = page.getByRole('navigation', { name: 'Main' })
    check((await nav.getByRole('link', { name: 'Users' }).count()) === 0, 'an API key session has no Users page')
    step('evp has no email sign-in routes: signed in with an API key from `evp apikey create`')
  }

  // 4. Send events with the key and see them in Analytics.
  const types = [...Array(15).fill('page_view'), ...Array(10).fill('click'), ...Array(5).fill('purchase')]
  const now = Date.now()
  const events = types.map((eventType, i) => ({
    eventType,
    userId: `user_${i % 6}`,
    sessionId: `sess_${i % 4}`,
    timestamp: new Date(now - i * 1000).toISOString(),
  }))
  const batch = await postJSON('/api/v1/events/batch', { events }, apiKey)
  check(batch.accepted === 30, `30 events accepted, got ${JSON.stringify(batch)}`)
  await until('the workers to store the 30 events', async () => {
    const res = await fetch(base + '/api/metrics', { headers: { 'x-api-key': apiKey } })
    const m = await res.json()
    return m.data?.processing?.totalEvents >= 30
  })
  step('sent 30 events with the key; evp stored them')

  const nav = page.getByRole('navigation', { name: 'Main' })
  await nav.getByRole('link', { name: 'Analytics' }).click()
  await page.getByRole('heading', { name: 'Analytics', level: 1 }).waitFor()
  // 15 min: a range not asked for before, so evp's 10 s answer cache cannot hide the events.
  await page.getByRole('button', { name: '15 min' }).click()
  const total = page.getByTestId('stat-Total events')
  await until('Total events to show 30', async () => (await total.textContent()).includes('30'), 40_000)
  const byType = page.getByTestId('events-by-type')
  await until('events by type to list page_view at 50%', async () => /page_view\s*15 · 50%/.test(await byType.innerText()))
  check(/click\s*10 · 33\.3%/.test(await byType.innerText()), `click at 33.3%: ${await byType.innerText()}`)
  check(/purchase\s*5 · 16\.7%/.test(await byType.innerText()), `purchase at 16.7%: ${await byType.innerText()}`)
  const users = page.getByTestId('top-users').locator('tbody tr')
  check((await users.count()) === 6, `6 top users, got ${await users.count()}`)
  check((await page.getByTestId('stat-Events per user').textContent()).includes('5'), 'avg events per user is 5')
  await page.locator('figure canvas').first().waitFor()
  const summary = await page.locator('figure figcaption').first().textContent()
  check(/Events over time: 30 events in 15 buckets/.test(summary), `the chart's text summary: ${summary}`)
  check(/Updated/.test(await page.getByTestId('last-updated').textContent()), 'a "last updated" time is shown')
  await shot('02-analytics')
  noProblems('analytics page')
  step('analytics shows 30 events, 3 types with percentages, 6 top users and the chart')

  // Filters: event type.
  await page.getByLabel('Event type', { exact: true }).selectOption('purchase')
  await until('Total events to show 5 with the purchase filter', async () => /^\D*5\D*$/.test(await total.textContent()))
  await page.getByLabel('Event type', { exact: true }).selectOption('')
  step('the event type filter narrows the totals')

  // The session is remembered across a reload.
  await page.reload()
  await page.getByRole('heading', { name: 'Analytics', level: 1 }).waitFor()
  step('the session survives a reload')

  // 5. Live.
  await nav.getByRole('link', { name: 'Live' }).click()
  await page.getByRole('heading', { name: 'Live', level: 1 }).waitFor()
  await page.getByTestId('stat-Queue length').waitFor()
  await page.getByRole('list', { name: 'Components' }).getByText('eventStore').waitFor()
  await until('the rate chart (after two polls)', async () => (await page.locator('figure canvas').count()) > 0, 20_000)
  check((await page.getByTestId('stat-Processing').innerText()).includes('30'), 'Live shows 30 stored')
  await shot('04-live')
  noProblems('live page')
  step('live shows rates, queue, health per component and the rate chart')

  if (withAuth) {
    // 6. Dead letters and users: the page renders its list, its empty state or a clear error.
    expectFailures = true
    await nav.getByRole('link', { name: 'Dead letters' }).click()
    await page.getByRole('heading', { name: 'Dead letters', level: 1 }).waitFor()
    await until('the dead letters list, empty state or error state', async () =>
      (await page.getByTestId('empty-state').count()) + (await page.getByTestId('error-state').count()) + (await page.getByRole('listitem').count()) > 0)
    await shot('05-dead-letters')
    await nav.getByRole('link', { name: 'Users' }).click()
    await page.getByRole('heading', { name: 'Users', level: 1 }).waitFor()
    await until('the users table or an error state', async () =>
      (await page.getByRole('cell', { name: new RegExp(email) }).count()) + (await page.getByTestId('error-state').count()) > 0)
    if ((await page.getByTestId('error-state').count()) === 0) {
      await page.getByLabel('Email', { exact: true }).fill('viewer@example.com')
      await page.getByLabel('Role', { exact: true }).selectOption('OPERATOR')
      await page.getByRole('button', { name: 'Invite' }).click()
      const invited = page.getByRole('row').filter({ has: page.getByRole('cell', { name: 'viewer@example.com' }) })
      await invited.waitFor()
      await invited.getByLabel('Role of viewer@example.com').selectOption('VIEWER')
      await until('the role change to be saved', async () => {
        const res = await fetch(base + '/api/users', { headers: { Authorization: `Bearer ${await page.evaluate(() => JSON.parse(localStorage.getItem('evp.session')).token)}` } })
        const list = (await res.json()).data
        return list.some((u) => u.email === 'viewer@example.com' && u.role === 'VIEWER')
      })
      invitedViewer = true
      step('invited a user and changed their role')
    }
    await shot('06-users')
    expectFailures = false
    noProblems('dead letters and users pages')
    step('dead letters and users pages render')
  }

  // 7. An API failure shows an error state that says what to do, and recovers.
  expectFailures = true
  await page.route('**/api/v1/analytics/metrics**', (route) =>
    route.fulfill({ status: 500, contentType: 'application/json', body: JSON.stringify({ success: false, error: { code: 'ANALYTICS_ERROR', message: 'the event store is unavailable' } }) }),
  )
  await nav.getByRole('link', { name: 'Analytics' }).click()
  await page.getByRole('button', { name: '24 hours' }).click()
  const err = page.getByTestId('error-state')
  await err.waitFor({ timeout: 40_000 })
  const errText = await err.innerText()
  check(/evp failed to answer/.test(errText) && /the event store is unavailable/.test(errText), `error state text: ${errText}`)
  await shot('07-analytics-error')
  await page.unroute('**/api/v1/analytics/metrics**')
  await err.getByRole('button', { name: 'Try again' }).click()
  await until('the error state to go after a retry', async () => (await page.getByTestId('error-state').count()) === 0, 40_000)
  expectFailures = false
  problems.length = 0 // the expected 500s above
  step('an API failure shows an error state with the reason; Try again recovers')

  // 8. Keyboard: the skip link and the navigation are reachable with Tab.
  await page.goto(base + '/live')
  await page.getByRole('heading', { name: 'Live', level: 1 }).waitFor()
  await page.keyboard.press('Tab')
  const focused = await page.evaluate(() => document.activeElement?.textContent)
  check(/Skip to content/.test(focused ?? ''), `first Tab focuses the skip link, got ${focused}`)
  await page.keyboard.press('Enter')
  check(await page.evaluate(() => document.activeElement?.id === 'main'), 'the skip link moves focus to the main content')
  step('keyboard: the first Tab reaches the skip link, which moves focus to the content')

  // 9. Phone width: the navigation folds behind a Menu button.
  await page.setViewportSize({ width: 390, height: 844 })
  const menu = page.getByRole('button', { name: 'Menu' })
  await menu.waitFor()
  check(!(await nav.isVisible()), 'the navigation is folded on a phone')
  await shot('08-phone')
  await menu.click()
  await nav.getByRole('link', { name: 'Live' }).click()
  await page.getByRole('heading', { name: 'Live', level: 1 }).waitFor()
  await page.setViewportSize({ width: 1366, height: 900 })
  step('phone width: the Menu button opens the navigation')

  // The dark theme, for the screenshots.
  await page.emulateMedia({ colorScheme: 'dark' })
  await nav.getByRole('link', { name: 'Analytics' }).click()
  await page.getByTestId('stat-Total events').waitFor()
  await shot('09-analytics-dark')
  await page.emulateMedia({ colorScheme: 'light' })

  // 10. Sign out.
  await page.getByRole('button', { name: 'Sign out' }).click()
  await page.getByRole('heading', { name: 'Sign in to evp', level: 1 }).waitFor()
  await page.goto(base + '/')
  await page.getByRole('heading', { name: 'Sign in to evp', level: 1 }).waitFor()
  noProblems('sign out')
  step('signed out; the session is gone after a reload')

  if (withAuth && invitedViewer) {
    // 11. A VIEWER sees only Analytics and Live; the server refuses the rest anyway.
    const viewer = 'viewer@example.com'
    await page.getByLabel('Email', { exact: true }).fill(viewer)
    await page.getByRole('button', { name: 'Send sign-in code' }).click()
    await page.getByLabel('6-digit code', { exact: true }).fill(await codeFromLog(viewer))
    await page.getByRole('button', { name: 'Sign in' }).click()
    await page.getByRole('heading', { name: 'Analytics', level: 1 }).waitFor()
    const links = await nav.getByRole('link').allTextContents()
    check(links.join(',') === 'Analytics,Live', `a VIEWER's navigation: ${links.join(', ')}`)
    await page.goto(base + '/users')
    await page.getByRole('heading', { name: 'Analytics', level: 1 }).waitFor()
    const token = await page.evaluate(() => JSON.parse(localStorage.getItem('evp.session')).token)
    const refused = await fetch(base + '/api/users', { headers: { Authorization: `Bearer ${token}` } })
    check(refused.status === 403, `GET /api/users as a VIEWER: ${refused.status}, want 403`)
    await shot('10-viewer')
    noProblems('viewer session')
    step('a VIEWER sees Analytics and Live only; /users sends them to Analytics; evp answers 403')
  }

  await context.close()
  console.log('e2e: all steps passed')
} catch (err) {
  console.error(`e2e: FAILED: ${err.stack || err.message}`)
  if (current) {
    await current.screenshot({ path: `${shots}/failure.png`, fullPage: true }).catch(() => {})
    console.error(`e2e: page at failure: ${current.url()} (screenshot ${shots}/failure.png)`)
  }
  if (problems.length) console.error(`e2e: also seen: ${problems.join('; ')}`)
  exitCode = 1
} finally {
  await browser.close()
}
process.exit(exitCode)
