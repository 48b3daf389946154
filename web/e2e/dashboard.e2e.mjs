// End-to-end test of the dashboard in real Chromium (Debian's /usr/bin/chromium) against a real
// evp. Run by internal/dashboard's TestDashboardInBrowser, which starts evp and passes:
//   EVP_URL          the evp to test, serving the built dashboard
//   EVP_LOG          evp's log file (JSON lines), where embedded mode writes sign-in codes
//   EVP_AUTH         "1" when evp has the email sign-in routes
//   EVP_API_KEY      a key made with `evp apikey create` (used when EVP_AUTH is not "1")
//   SCREENSHOT_DIR   where to save a screenshot of each page
//   EVP_CONTROL      a server of the Go test: POST /cure drops the trigger that makes evp's store
//                    refuse events of type "poison" (how events reach the dead-letter queue)
// It prints one line per step and exits non-zero on the first failure. Pages are also audited
// with axe-core (a11y.mjs) in the light and dark themes; its findings are reported at the end.
import { readFile, mkdir } from 'node:fs/promises'
import { chromium } from 'playwright-core'
import { audit, findings } from './a11y.mjs'

const base = process.env.EVP_URL
const logFile = process.env.EVP_LOG
const withAuth = process.env.EVP_AUTH === '1'
const shots = process.env.SCREENSHOT_DIR || 'test-results/screenshots'
const chromePath = process.env.CHROMIUM || '/usr/bin/chromium'
const control = process.env.EVP_CONTROL
if (!base) throw new Error('EVP_URL is not set')
// A zone with a half-hour offset from UTC and no daylight saving time: custom ranges are typed
// in local time and must reach evp as the right UTC instants.
const timezoneId = 'Asia/Kolkata'
const viewport = { width: 1366, height: 900 }

const TIMEOUT = 30_000
const t0 = Date.now()
const step = (msg) => console.log(`e2e: ${msg} (${((Date.now() - t0) / 1000).toFixed(1)} s)`)
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

/** The newest sign-in code evp wrote to its log for email, waiting for one not in used. */
async function codeFromLog(email, used = []) {
  return until(`a new sign-in code for ${email} in evp's log`, async () => {
    const lines = (await readFile(logFile, 'utf8')).split('\n').reverse()
    for (const line of lines) {
      if (!line.includes('sign-in code') || !line.includes(email)) continue
      let code = null
      try {
        const rec = JSON.parse(line)
        if (rec.msg === 'sign-in code' && rec.email === email && /^\d{6}$/.test(String(rec.code))) code = String(rec.code)
      } catch {
        const m = line.match(/code=(\d{6})/)
        if (m && line.includes(`email=${email}`)) code = m[1]
      }
      if (code) return used.includes(code) ? null : code
    }
    return null
  })
}

/** Signs in on a sign-in page with the emailed code (read from the log); returns the code. */
async function signIn(page, email, used = []) {
  await page.getByLabel('Email', { exact: true }).fill(email)
  await page.getByRole('button', { name: 'Send sign-in code' }).click()
  const codeInput = page.getByLabel('6-digit code', { exact: true })
  await codeInput.waitFor()
  const code = await codeFromLog(email, used)
  await codeInput.fill(code)
  await page.getByRole('button', { name: 'Sign in' }).click()
  return code
}

const sessionToken = (page) => page.evaluate(() => JSON.parse(localStorage.getItem('evp.session')).token)

/** GET from evp with a bearer token or an API key; returns the envelope's data. */
async function getJSON(path, { token, key }) {
  const headers = token ? { Authorization: `Bearer ${token}` } : { 'x-api-key': key }
  const res = await fetch(base + path, { headers })
  const json = await res.json()
  if (res.status !== 200) throw new Error(`GET ${path}: ${res.status} ${JSON.stringify(json)}`)
  return json.data
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

/** Fails when the page scrolls sideways: something is wider than the screen. */
async function noPageScroll(page, where) {
  const r = await page.evaluate(() => {
    const vw = document.documentElement.clientWidth
    const wide = [...document.querySelectorAll('body *')]
      .filter((e) => e.getBoundingClientRect().right > vw + 1 && (!e.closest('.overflow-x-auto') || getComputedStyle(e).position === 'absolute'))
      .slice(0, 3)
      .map((e) => `${e.tagName.toLowerCase()}.${String(e.className).split(' ').slice(0, 3).join('.')}`)
    return { width: document.documentElement.scrollWidth, vw, wide }
  })
  check(r.width <= r.vw, `${where}: the page is ${r.width} px wide on a ${r.vw} px screen (${r.wide.join(', ')})`)
}

async function newPage() {
  const context = await browser.newContext({ viewport, timezoneId })
  const page = await context.newPage()
  page.setDefaultTimeout(TIMEOUT)
  watch(page)
  return { context, page }
}

let exitCode = 0
let current = null
let invitedViewer = false
try {
  const { context, page } = await newPage()
  current = page
  const shot = (name) => page.screenshot({ path: `${shots}/${name}.png`, fullPage: true })

  // 1. Signed out: every page leads to sign-in.
  await page.goto(base + '/live')
  await page.getByRole('heading', { name: 'Sign in to evp', level: 1 }).waitFor()
  check(new URL(page.url()).pathname === '/sign-in', `signed-out visit to /live ends on /sign-in, not ${page.url()}`)
  await shot('01-sign-in')
  await audit(page, 'sign-in')
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
    await audit(page, 'sign-in, code step')
    const code = await codeFromLog(email)
    await codeInput.fill(code)
    await page.getByRole('button', { name: 'Sign in' }).click()
    // Back to the page asked for before signing in.
    await page.getByRole('heading', { name: 'Live', level: 1 }).waitFor()
    step(`signed in as ${email} with the code from evp's log, back on /live`)
    // The first user is ADMIN: every page is in the navigation.
    const nav = page.getByRole('navigation', { name: 'Main' })
    for (const name of ['Analytics', 'Events', 'Live', 'API keys', 'Dead letters', 'Users']) {
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
    await audit(page, 'API keys, new key shown')
    noProblems('API keys page')
    step('created an API key in the UI; it is shown once and listed')

    // Revoke the key `evp apikey create` made, through the confirmation dialog.
    const keyRow = (name) => page.getByRole('row').filter({ has: page.getByRole('cell', { name, exact: true }) })
    const revokeKey = async (name) => {
      await keyRow(name).getByRole('button', { name: `Revoke ${name}` }).click()
      const dialog = page.getByRole('dialog')
      await dialog.getByText('This cannot be undone').waitFor()
      await dialog.getByRole('button', { name: 'Revoke key' }).click()
      await keyRow(name).getByText('revoked').waitFor()
    }
    const row = keyRow('browser-test')
    await revokeKey('browser-test')
    check((await row.getByRole('button', { name: /Revoke/ }).count()) === 0, 'a revoked key has no Revoke button')
    const refused = await fetch(base + '/api/metrics', { headers: { 'x-api-key': process.env.EVP_API_KEY } })
    check(refused.status === 401 || refused.status === 403, `the revoked key is refused, got ${refused.status}`)
    check((await keyEl.textContent()).trim() === apiKey, 'revoking another key leaves the new key shown')
    noProblems('revoking a key')
    step('revoked a key after confirming; evp refuses it; the new key is still shown')

    // A key revoked while its plain text is still shown: the text goes with it.
    await page.getByLabel('Name', { exact: true }).fill('e2e short-lived')
    await page.getByRole('button', { name: 'Create key' }).click()
    await until('the second new key to be shown', async () => (await keyEl.textContent()).trim() !== apiKey)
    const shortLived = (await keyEl.textContent()).trim()
    await revokeKey('e2e short-lived')
    await page.getByTestId('new-key').waitFor({ state: 'detached' })
    check(!(await page.locator('body').innerText()).includes(shortLived), 'the revoked key\'s plain text is no longer on the page')
    await shot('03b-api-keys-revoked-new-key')
    noProblems('revoking the key just created')
    step('revoking the key just created hides its plain text')

    // An ingest-only key limited to two web origins: listed as such, refused by every route but
    // ingestion, and refused for ingestion from another origin.
    const ingestOnly = page.getByLabel('Ingest only', { exact: true })
    const originsField = page.getByLabel('Allowed origins', { exact: true })
    await page.getByLabel('Name', { exact: true }).fill('e2e web page')
    await ingestOnly.check()
    await originsField.fill('https://Shop.example\nhttp://localhost:8080')
    await page.getByRole('button', { name: 'Create key' }).click()
    await page.getByTestId('new-key').getByText('it may only send events').waitFor()
    const webKey = (await keyEl.textContent()).trim()
    await keyRow('e2e web page').getByText('Ingest only', { exact: true }).waitFor()
    const listedOrigins = await keyRow('e2e web page').getByRole('list', { name: 'Origins' }).getByRole('listitem').allTextContents()
    check(listedOrigins.join(' ') === 'https://shop.example http://localhost:8080', `the list shows the key's origins, lower-cased: ${listedOrigins.join(', ')}`)
    check((await keyRow('e2e ingestion').getByText('Ingest + read', { exact: true }).count()) === 1, 'a key made without "Ingest only" is listed as Ingest + read')
    check((await keyRow('e2e ingestion').getByText('Any origin', { exact: true }).count()) === 1, 'a key made without origins is listed as Any origin')
    check(!(await ingestOnly.isChecked()), '"Ingest only" is unticked after the key is made')
    check((await originsField.inputValue()) === '', '"Allowed origins" is empty after the key is made')
    const readRefused = await fetch(base + '/api/metrics', { headers: { 'x-api-key': webKey } })
    check(readRefused.status === 403, `GET /api/metrics with an ingest-only key: ${readRefused.status}, want 403`)
    // Node's fetch may set Origin (a page's fetch may not). The event is valid: only its origin
    // is wrong. From an allowed origin, an empty body passes the key check and fails validation
    // (400), so that no event is stored (the analytics steps below count them).
    const sendFrom = (origin, body) =>
      fetch(base + '/api/v1/events', { method: 'POST', headers: { 'Content-Type': 'application/json', 'x-api-key': webKey, Origin: origin }, body: JSON.stringify(body) })
    const foreign = await sendFrom('https://evil.example', { eventType: 'page_view', userId: 'e2e_origin', sessionId: 'e2e_origin', timestamp: new Date().toISOString() })
    const foreignBody = await foreign.text()
    check(foreign.status === 403 && foreignBody.includes('may not send events from origin'), `POST /api/v1/events from another origin: ${foreign.status} ${foreignBody}, want 403`)
    const own = await sendFrom('https://shop.example', {})
    check(own.status === 400, `POST /api/v1/events with no event from an allowed origin: ${own.status}, want 400 (the origin accepted, the body refused)`)
    await shot('03c-api-keys-ingest-only')
    await audit(page, 'API keys, ingest-only key shown')
    noProblems('creating an ingest-only key')
    step('created an ingest-only key with allowed origins: the list says "Ingest only" and its origins; evp refuses it for metrics and from another origin')
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
    metadata: { page: i % 2 ? '/home' : '/pricing' },
    payload: { n: i },
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
  // Clicked again if the choice did not stick: one CI run saw the page still on 1 hour after
  // the click, right after navigating here (cause not found; see the issue note).
  const fifteen = page.getByRole('button', { name: '15 min' })
  await until('the 15 min range to be selected', async () => {
    if ((await fifteen.getAttribute('aria-pressed')) !== 'true') await fifteen.click()
    return (await fifteen.getAttribute('aria-pressed')) === 'true'
  })
  const total = page.getByTestId('stat-Total events')
  await until('Total events to show 30', async () => (await total.textContent()).includes('30'), 40_000)
  const byType = page.getByTestId('events-by-type')
  await until('events by type to list page_view at 50.0%', async () => /page_view\s*15 · 50\.0%/.test(await byType.innerText()))
  check(/click\s*10 · 33\.3%/.test(await byType.innerText()), `click at 33.3%: ${await byType.innerText()}`)
  check(/purchase\s*5 · 16\.7%/.test(await byType.innerText()), `purchase at 16.7%: ${await byType.innerText()}`)
  const users = page.getByTestId('top-users').locator('tbody tr')
  check((await users.count()) === 6, `6 top users, got ${await users.count()}`)
  check((await page.getByTestId('stat-Events per user').textContent()).includes('5'), 'avg events per user is 5')
  await page.locator('figure canvas').first().waitFor()
  // Until the 15-minute answer has replaced the 1-hour one (both hold the 30 events).
  const caption = page.locator('figure figcaption').first()
  await until("the chart's text summary to show 30 events in 15 buckets", async () => {
    const summary = await caption.textContent()
    if (!/Events over time: 30 events in 15 buckets/.test(summary)) throw new Error(`the summary says: ${summary}`)
    return true
  })
  check(/Updated/.test(await page.getByTestId('last-updated').textContent()), 'a "last updated" time is shown')
  await shot('02-analytics')
  await audit(page, 'analytics')
  noProblems('analytics page')
  step('analytics shows 30 events, 3 types with percentages, 6 top users and the chart')

  // Filters: event type.
  await page.getByLabel('Event type', { exact: true }).selectOption('purchase')
  await until('Total events to show 5 with the purchase filter', async () => /^\D*5\D*$/.test(await total.textContent()))
  await page.getByLabel('Event type', { exact: true }).selectOption('')
  step('the event type filter narrows the totals')

  // Custom range: events at known instants of 10 January 2026, four inside 10:00-11:00 UTC and
  // two just outside it. The range is typed in the browser's local time (UTC+5:30).
  const at = (eventType, userId, timestamp) => ({ eventType, userId, sessionId: `s_${userId}`, timestamp })
  const inside = [at('signup', 'cr_a', '2026-01-10T10:00:00Z'), at('signup', 'cr_b', '2026-01-10T10:20:00Z'), at('signup', 'cr_c', '2026-01-10T10:40:00Z'), at('login', 'cr_a', '2026-01-10T10:59:30Z')]
  const outside = [at('signup', 'cr_out', '2026-01-10T09:45:00Z'), at('login', 'cr_out', '2026-01-10T11:15:00Z')]
  await postJSON('/api/v1/events/batch', { events: [...inside, ...outside] }, apiKey)
  await until('the workers to store the 6 dated events', async () => (await getJSON('/api/metrics', { key: apiKey })).processing?.totalEvents >= 36)
  const wanted = (url) => {
    const u = new URL(url)
    return u.pathname === '/api/v1/analytics/metrics' && u.searchParams.get('from') === '2026-01-10T10:00:00Z' && u.searchParams.get('to') === '2026-01-10T11:00:00Z'
  }
  const customRequest = page.waitForRequest((r) => wanted(r.url()))
  await page.getByRole('button', { name: 'Custom' }).click()
  await page.getByLabel('From', { exact: true }).fill('2026-01-10T15:30')
  await page.getByLabel('To', { exact: true }).fill('2026-01-10T16:30')
  const req = new URL((await customRequest).url())
  check(!req.searchParams.has('timeRange'), `a custom range sends from/to only: ${req.search}`)
  await until('Total events to show the 4 events inside the range', async () => /^\D*4\D*$/.test(await total.textContent()))
  check(/^\D*3\D*$/.test(await page.getByTestId('stat-Unique users').textContent()), `3 unique users in the range: ${await page.getByTestId('stat-Unique users').textContent()}`)
  const typesText = await byType.innerText()
  check(/signup\s*3 · 75\.0%/.test(typesText) && /login\s*1 · 25\.0%/.test(typesText) && !/page_view/.test(typesText), `types in the range: ${typesText}`)
  const rangeUsers = await page.getByTestId('top-users').locator('tbody tr td:first-child a').allInnerTexts()
  check(rangeUsers[0] === 'cr_a' && [...rangeUsers].sort().join(',') === 'cr_a,cr_b,cr_c', `top users in the range, cr_a (2 events) first: ${rangeUsers.join(', ')}`)
  check(/Events over time: 4 events in 60 buckets/.test(await page.locator('figure figcaption').first().textContent()), 'the chart covers the range in 60 one-minute buckets')
  await shot('02b-analytics-custom-range')
  await audit(page, 'analytics, custom range')
  noProblems('analytics custom range')
  step(`a custom range in local time asks for ${req.search} and shows only the 4 events inside it`)

  // The chart's tooltip: the bucket under the pointer, its time in local time and its count.
  // The range (15:30-16:30 local) is 60 one-minute bars across the plot: bar 20 is 15:50,
  // which holds cr_b's event (10:20 UTC).
  const plotArea = page.locator('figure .u-over').first()
  const tip = page.getByTestId('chart-tooltip')
  // The chart is drawn again when the theme changes (as the audit above did): hover until the
  // one on the page answers.
  const hoverBucket = (i) =>
    until(`the tooltip of bar ${i}`, async () => {
      const box = await plotArea.boundingBox()
      if (!box) return false
      await page.mouse.move(box.x + ((i + 0.5) / 60) * box.width, box.y + box.height / 2)
      return (await tip.isVisible()) && tip.innerText()
    })
  const tip20 = await hoverBucket(20)
  check(/Jan 10, 2026/.test(tip20) && /\b(15|03):50\b/.test(tip20) && /Events: 1\b/.test(tip20), `the tooltip of the 15:50 bucket: ${tip20}`)
  const tip21 = await hoverBucket(21)
  check(/\b(15|03):51\b/.test(tip21) && /Events: 0\b/.test(tip21), `the tooltip of the empty 15:51 bucket: ${tip21}`)
  await shot('02c-analytics-tooltip')
  await page.mouse.move(0, 0)
  await tip.waitFor({ state: 'hidden' })
  step('hovering the chart shows a tooltip with the bucket\'s local time and count')

  // With many event types the chart fills its panel, which is as tall as the type list.
  const many = Array.from({ length: 12 }, (_, i) => at(`type_${String(i).padStart(2, '0')}`, `mt_${i}`, `2026-01-11T10:${String(i * 4).padStart(2, '0')}:00Z`))
  await postJSON('/api/v1/events/batch', { events: many }, apiKey)
  await until('the workers to store the 12 events of 12 types', async () => (await getJSON('/api/metrics', { key: apiKey })).processing?.totalEvents >= 48)
  await page.getByLabel('From', { exact: true }).fill('2026-01-11T15:30')
  await page.getByLabel('To', { exact: true }).fill('2026-01-11T16:30')
  await until('the 12 types to be listed', async () => /type_11/.test(await byType.innerText()))
  const fill = await page.evaluate(() => {
    const chart = document.querySelector('figure > div')
    const box = chart.getBoundingClientRect()
    const panel = chart.closest('section').getBoundingClientRect()
    const types = document.querySelector('[data-testid="events-by-type"]').closest('section').getBoundingClientRect()
    return { box: box.height, gap: panel.bottom - box.bottom, panel: panel.height, types: types.height }
  })
  check(fill.types > 300 && Math.abs(fill.panel - fill.types) < 2, `the two panels are one row as tall as the type list: ${JSON.stringify(fill)}`)
  check(fill.box > 260 && fill.gap <= 20, `the chart fills its panel: ${JSON.stringify(fill)}`)
  await shot('02d-analytics-many-types')
  noProblems('analytics with many types')
  step(`with 12 event types the chart is ${Math.round(fill.box)} px high, filling its panel`)

  // The session is remembered across a reload.
  await page.reload()
  await page.getByRole('heading', { name: 'Analytics', level: 1 }).waitFor()
  step('the session survives a reload')

  // Events: the Analytics page links a type to its events in the same range (after the reload,
  // the first page's 1 hour, which holds the 30 recent events and none of January's).
  await page.getByTestId('events-by-type').getByRole('link', { name: 'purchase', exact: true }).click()
  await page.getByRole('heading', { name: 'Events', level: 1 }).waitFor()
  const eventsURL = new URL(page.url())
  check(eventsURL.pathname === '/events' && eventsURL.searchParams.get('timeRange') === '1h' && eventsURL.searchParams.get('eventType') === 'purchase', `the purchase link leads to its events in the same range: ${eventsURL.pathname}${eventsURL.search}`)
  const eventRows = page.getByTestId('events').locator('tbody tr')
  const cellsOf = (i) => eventRows.locator(`td:nth-child(${i})`).allInnerTexts()
  await until('the 5 purchase events to be listed', async () => (await eventRows.count()) === 5)
  check((await cellsOf(2)).every((t) => t === 'purchase'), `only purchase events: ${await cellsOf(2)}`)
  check((await page.getByLabel('Event type', { exact: true }).inputValue()) === 'purchase', 'the type filter shows purchase')
  await page.getByText('That is every event that matches.').waitFor()
  // Newest first: the list's times go down.
  const listed = await page.evaluate(() => [...document.querySelectorAll('[data-testid="events"] tbody tr')].map((r) => r.querySelector('button').textContent))
  check(listed.length === 5 && listed.every((t) => t.length > 0), `the list shows each event's time: ${listed}`)
  await shot('02e-events-purchase')
  await audit(page, 'events')
  step('a type on the Analytics page links to the Events page, which lists its 5 events, in the same range')

  // Clear the filter: the 30 events; then filter by type and by a property, typed in the bar.
  await page.getByRole('button', { name: 'Clear', exact: true }).click()
  await until('the 30 events to be listed', async () => (await eventRows.count()) === 30)
  check(!new URL(page.url()).searchParams.has('eventType'), `Clear removes the type from the address: ${page.url()}`)
  await page.getByLabel('Event type', { exact: true }).fill('click')
  await page.getByLabel('Event type', { exact: true }).press('Enter')
  await until('the 10 click events to be listed', async () => (await eventRows.count()) === 10 && (await cellsOf(2)).every((t) => t === 'click'))
  await page.getByLabel('Property', { exact: true }).fill('metadata.page:/home')
  await page.getByRole('button', { name: 'Apply', exact: true }).click()
  // Events 15, 17, 19, 21 and 23 are clicks on /home.
  await until('the 5 click events on /home to be listed', async () => (await eventRows.count()) === 5)
  const propURL = new URL(page.url())
  check(propURL.searchParams.get('eventType') === 'click' && propURL.searchParams.get('prop') === 'metadata.page:/home', `the filters are in the address: ${propURL.search}`)
  const homeUsers = [...(await cellsOf(3))].sort().join(',')
  check(homeUsers === 'user_1,user_3,user_3,user_5,user_5', `the users of clicks 15-23 on /home: ${homeUsers}`)
  // A malformed condition is refused in the page; one evp refuses says why.
  await page.getByLabel('Property', { exact: true }).fill('page=/home')
  await page.getByLabel('Property', { exact: true }).press('Enter')
  await page.getByRole('alert').getByText('FIELD.PATH:VALUE').waitFor()
  expectFailures = true
  await page.getByLabel('Property', { exact: true }).fill('metadata.a..b:1')
  await page.getByLabel('Property', { exact: true }).press('Enter')
  const refusedProp = page.getByTestId('error-state')
  await refusedProp.waitFor()
  check(/prop/.test(await refusedProp.innerText()), `evp's refusal names the prop: ${await refusedProp.innerText()}`)
  expectFailures = false
  problems.length = 0 // the expected 400
  step('the Events page filters by type and by a property (in the address), and says why a condition is refused')

  // A link with the filters opens the same list; a row opens the event's panel with its JSON.
  await page.goto(base + '/events?timeRange=1h&eventType=click&prop=metadata.page%3A%2Fhome')
  await until('the linked list of 5 events', async () => (await eventRows.count()) === 5)
  const firstOpen = eventRows.first().getByRole('button')
  await firstOpen.focus()
  await page.keyboard.press('Enter')
  const drawer = page.getByRole('dialog', { name: 'Event' })
  await drawer.waitFor()
  const eventJSON = JSON.parse(await drawer.getByTestId('event-json').innerText())
  check(eventJSON.eventType === 'click' && eventJSON.metadata?.page === '/home' && eventJSON.source === 'api' && typeof eventJSON.payload?.n === 'number', `the panel shows the whole event: ${JSON.stringify(eventJSON)}`)
  check(/^evt_/.test(eventJSON.eventId) && new URL(page.url()).searchParams.get('event') === eventJSON.eventId, `the open event is in the address: ${page.url()}`)
  await drawer.getByRole('button', { name: 'Copy JSON' }).waitFor()
  const box = await drawer.boundingBox()
  check(box && Math.abs(box.x + box.width - viewport.width) < 2 && box.height >= viewport.height - 1, `the panel is at the right, full height: ${JSON.stringify(box)}`)
  await shot('02f-events-panel')
  await audit(page, 'events, an event open')
  await page.keyboard.press('Escape')
  await drawer.waitFor({ state: 'hidden' })
  check(await firstOpen.evaluate((b) => b === document.activeElement), 'closing the panel gives the focus back to the row')
  check(!new URL(page.url()).searchParams.has('event'), `closed, the event leaves the address: ${page.url()}`)
  // The same event, by its link: evp is asked for it.
  await page.goto(`${base}/events?event=${encodeURIComponent(eventJSON.eventId)}&eventType=nothing_matches`)
  await drawer.getByText(`"eventId": "${eventJSON.eventId}"`).waitFor()
  await drawer.getByRole('button', { name: 'Close' }).click()
  await page.getByTestId('empty-state').getByText('No events match the filters').waitFor()
  noProblems('events page')
  step('a row opens the event in a side panel (whole JSON, keyboard, Escape), and a link opens one event')

  // Export: the events that match, as CSV, with the session's credentials.
  await page.goto(base + '/events?timeRange=1h&eventType=purchase')
  await until('the 5 purchase events', async () => (await eventRows.count()) === 5)
  const [csv] = await Promise.all([page.waitForEvent('download'), page.getByRole('group', { name: 'Export' }).getByRole('button', { name: 'CSV' }).click()])
  const csvText = await readFile(await csv.path(), 'utf8')
  const csvLines = csvText.trim().split(/\r?\n/)
  check(/^evp-events-.*\.csv$/.test(csv.suggestedFilename()), `the file is named as evp says: ${csv.suggestedFilename()}`)
  check(csvLines[0].startsWith('eventId,eventType') && csvLines.length === 6 && csvLines.slice(1).every((l) => l.includes(',purchase,')), `the CSV holds a header and the 5 purchase events: ${csvText.slice(0, 400)}`)
  const [nd] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'NDJSON' }).click()])
  const ndLines = (await readFile(await nd.path(), 'utf8')).trim().split('\n').map((l) => JSON.parse(l))
  check(ndLines.length === 5 && ndLines.every((e) => e.eventType === 'purchase'), `the NDJSON holds the 5 purchase events: ${ndLines.length}`)
  noProblems('events export')
  step('Export downloads the matching events as CSV and NDJSON')

  // 5. Live. evp keeps the last 10 minutes of rates, one point every 10 s from its start:
  // once it has two, a newly opened Live page draws them with its first answers.
  const recorded = await until('evp to have recorded two points of rate history', async () => {
    const h = await getJSON('/api/metrics/history', { key: apiKey })
    return h.points.length >= 2 && h
  }, 40_000)
  check(recorded.stepSeconds === 10 && recorded.points.every((p) => p.ingested !== null && p.processed !== null), `both rates recorded: ${JSON.stringify(recorded)}`)
  const metricsPolls = []
  const countPolls = (r) => new URL(r.url()).pathname === '/api/metrics' && metricsPolls.push(r.url())
  page.on('request', countPolls)
  await page.goto(base + '/live')
  await page.getByRole('heading', { name: 'Live', level: 1 }).waitFor()
  await page.locator('figure canvas').first().waitFor()
  page.off('request', countPolls)
  check(metricsPolls.length <= 1, `the rate chart is drawn from evp's history, before a second poll (${metricsPolls.length} polls)`)
  const liveSummary = await page.locator('figure figcaption').first().textContent()
  const covered = liveSummary.match(/over the last (\d+) (s|min)/)
  check(covered && (covered[2] === 'min' || Number(covered[1]) >= 20), `the chart covers the recorded history: ${liveSummary}`)
  const legend = await page.getByTestId('chart-legend').innerText()
  check(/Ingested/.test(legend) && /Processed/.test(legend) && !/Time/.test(legend), `the legend names the two lines only: ${legend}`)
  await page.getByTestId('stat-Queue length').waitFor()
  await page.getByRole('list', { name: 'Components' }).getByText('eventStore').waitFor()
  check((await page.getByTestId('stat-Processing').innerText()).includes('48'), 'Live shows 48 stored')
  const latencies = await page.getByRole('list', { name: 'Components' }).innerText()
  check(!/0\.0 ms/.test(latencies) && /µs|ms/.test(latencies), `health latencies are readable: ${latencies}`)
  const liveTip = await until('the rate chart\'s tooltip', async () => {
    const box = await page.locator('figure .u-over').first().boundingBox()
    if (!box) return false
    await page.mouse.move(box.x + box.width * 0.9, box.y + box.height / 2)
    const t = page.getByTestId('chart-tooltip')
    return (await t.isVisible()) && t.innerText()
  })
  check(/Ingested: /.test(liveTip) && /Processed: /.test(liveTip) && /\d\d:\d\d:\d\d/.test(liveTip), `the rate chart's tooltip: ${liveTip}`)
  await shot('04-live')
  await page.mouse.move(0, 0)
  await audit(page, 'live')
  noProblems('live page')
  step(`live draws ${liveSummary.match(/over the last ([^;]+)/)[1]} of rates from evp at first paint, with a tooltip; rates, queue and health per component`)

  // evp stops answering: the health panel says so instead of showing its last answer.
  expectFailures = true
  await page.route('**/api/health', (route) => route.abort())
  const healthPanel = page.locator('section').filter({ has: page.getByRole('heading', { name: 'Health' }) })
  await healthPanel.getByText('unreachable', { exact: true }).waitFor({ timeout: 20_000 })
  const healthText = await healthPanel.innerText()
  check(/evp is not reachable/.test(healthText) && !/healthy|Failed to fetch/.test(healthText), `the health panel of an unreachable evp: ${healthText}`)
  await shot('04b-live-unreachable')
  await audit(page, 'live, evp unreachable')
  await page.unroute('**/api/health')
  await healthPanel.getByText('healthy', { exact: true }).waitFor({ timeout: 20_000 })
  expectFailures = false
  problems.length = 0 // the aborted health checks
  step('when evp does not answer, the health panel says "unreachable" and recovers')

  // Events, Live: new events that match the filters stream into the top of the list as evp
  // accepts them (GET /api/v1/events/live, read with fetch and the session's credentials).
  const liveEvent = (userId) => ({ eventType: 'live_check', userId, sessionId: 'sess_live', timestamp: new Date().toISOString(), metadata: { page: '/live' } })
  const storedBeforeLive = (await getJSON('/api/metrics', { key: apiKey })).processing.totalEvents
  await page.goto(base + '/events?timeRange=1h&eventType=live_check')
  await page.getByTestId('empty-state').waitFor()
  const liveToggle = page.getByRole('button', { name: 'Live', exact: true })
  await liveToggle.click()
  check((await liveToggle.getAttribute('aria-pressed')) === 'true', 'the Live toggle is pressed')
  const liveStatus = page.getByTestId('live-status')
  await until('Live to be connected', async () => (await liveStatus.innerText()).trim() === 'Live', 10_000)
  const firstUser = () => eventRows.first().locator('td:nth-child(3)').innerText()
  const sent = Date.now()
  await postJSON('/api/v1/events/batch', { events: [liveEvent('live_user_1')] }, apiKey)
  await until('the sent event at the top of the list', async () => (await eventRows.count()) === 1 && (await firstUser()) === 'live_user_1', 5_000)
  const shownIn = Date.now() - sent
  const mark = await eventRows.first().getByTestId('live-mark').innerText()
  check(/^Received live at \d\d:\d\d:\d\d/.test(mark), `the live row says when it arrived: ${mark}`)
  check(/Last event received at/.test(await page.getByTestId('live-bar').innerText()), 'the live bar says when the last event arrived')
  // On a phone: the live bar and a live card fit the screen.
  await page.setViewportSize({ width: 390, height: 844 })
  await noPageScroll(page, 'events with Live on, on a phone')
  await page.screenshot({ path: `${shots}/08-phone-events-live.png`, fullPage: true })
  await page.setViewportSize(viewport)
  await shot('02g-events-live')
  await audit(page, 'events, Live on')
  // Paused: a new event is counted, not shown; resuming (from the keyboard) shows it on top.
  await page.getByRole('button', { name: 'Pause', exact: true }).click()
  await until('Live to be paused', async () => (await liveStatus.innerText()).trim() === 'Paused', 5_000)
  await postJSON('/api/v1/events/batch', { events: [liveEvent('live_user_2')] }, apiKey)
  const waiting = page.getByTestId('live-waiting')
  await until('"1 new event" counted while paused', async () => (await waiting.innerText()).trim() === '1 new event', 5_000)
  check((await eventRows.count()) === 1 && (await firstUser()) === 'live_user_1', 'paused, the list stays as it was')
  await audit(page, 'events, Live paused')
  const resume = page.getByRole('button', { name: 'Resume', exact: true })
  await resume.focus()
  await page.keyboard.press('Enter')
  await until('the second event at the top once resumed', async () => (await eventRows.count()) === 2 && (await firstUser()) === 'live_user_2', 5_000)
  check((await liveStatus.innerText()).trim() === 'Live', 'resumed, Live goes on')
  const announced = await page.getByTestId('live-announcer').innerText()
  check(/Resumed: 1 new event shown/.test(announced), `the polite live region says what resuming did: ${announced}`)
  noProblems('events, Live')
  // Off: the list reloads from the store, which holds both events by then.
  await until('the workers to store the 2 live events', async () => (await getJSON('/api/metrics', { key: apiKey })).processing.totalEvents >= storedBeforeLive + 2)
  await liveToggle.click()
  check((await liveToggle.getAttribute('aria-pressed')) === 'false', 'the Live toggle is off')
  await until('the stored list of the 2 events, no longer live', async () => (await eventRows.count()) === 2 && (await page.getByTestId('live-mark').count()) === 0)
  check((await page.getByTestId('live-bar').count()) === 0, 'Live off, no live bar')
  noProblems('events, Live off')
  step(`Live on the Events page: an event sent shows at the top in ${shownIn} ms; paused, the next is counted ("1 new event") and shown on resume; off, the list reloads`)

  if (withAuth) {
    const admin = await sessionToken(page)

    // An ADMIN deletes every event of one user (an erasure request) from the Events page
    // filtered by that user, through a dialog that wants the id typed. The id has a space and a
    // slash: it travels encoded in the path. Another user's event stays.
    const eraseId = 'erase me/1'
    const eraseEvents = [0, 1, 2].map((i) => ({ eventType: 'erase_check', userId: eraseId, sessionId: 'sess_erase', timestamp: new Date(Date.now() - i * 1000).toISOString() }))
    const keepEvent = { eventType: 'erase_check', userId: 'erase_keep', sessionId: 'sess_erase', timestamp: new Date().toISOString() }
    const storedBeforeErase = (await getJSON('/api/metrics', { key: apiKey })).processing.totalEvents
    await postJSON('/api/v1/events/batch', { events: [...eraseEvents, keepEvent] }, apiKey)
    await until('the workers to store the 4 events to erase and keep', async () => (await getJSON('/api/metrics', { key: apiKey })).processing.totalEvents >= storedBeforeErase + 4)
    await page.goto(base + '/events?timeRange=1h')
    const forgetButton = page.getByRole('button', { name: "Delete this user's events…" })
    await eventRows.first().waitFor()
    check((await forgetButton.count()) === 0, 'no "Delete this user\'s events…" without a user filter')
    await page.getByLabel('User id', { exact: true }).fill(eraseId)
    await page.getByLabel('User id', { exact: true }).press('Enter')
    await until(`the 3 events of ${eraseId}`, async () => (await eventRows.count()) === 3 && (await cellsOf(3)).every((t) => t === eraseId))
    await forgetButton.click()
    const forgetDialog = page.getByRole('dialog', { name: 'Delete every event of this user?' })
    await forgetDialog.getByText('This cannot be undone').waitFor()
    const forgetText = await forgetDialog.innerText()
    check(forgetText.includes(`exactly ${eraseId} is deleted`) && /Analytics stop counting them/.test(forgetText) && /still being sent/.test(forgetText), `the dialog says what happens: ${forgetText}`)
    const confirmField = forgetDialog.getByLabel('Type the user id to confirm', { exact: true })
    const eraseConfirm = forgetDialog.getByRole('button', { name: 'Delete', exact: true })
    await until('the focus to be in the confirmation field', () => confirmField.evaluate((el) => el === document.activeElement))
    check(await eraseConfirm.isDisabled(), 'Delete is disabled until the id is typed')
    await audit(page, "events, deleting a user's events")
    await page.keyboard.press('Escape')
    await forgetDialog.waitFor({ state: 'hidden' })
    check(await forgetButton.evaluate((b) => b === document.activeElement), 'Escape closes the dialog and gives the focus back to its button')
    check((await eventRows.count()) === 3, 'cancelled, the events are still listed')
    // On a phone: the button and the dialog fit the screen.
    await page.setViewportSize({ width: 390, height: 844 })
    await noPageScroll(page, 'events filtered by a user, on a phone')
    const triggerBox = await forgetButton.boundingBox()
    check(triggerBox && triggerBox.x >= 0 && triggerBox.x + triggerBox.width <= 390, `"Delete this user's events…" is whole on a phone: ${JSON.stringify(triggerBox)}`)
    await forgetButton.click()
    await forgetDialog.getByText('This cannot be undone').waitFor()
    const dialogBox = await forgetDialog.boundingBox()
    check(dialogBox && dialogBox.x >= 0 && dialogBox.x + dialogBox.width <= 390 && dialogBox.y >= 0 && dialogBox.y + dialogBox.height <= 844, `the dialog fits a phone's screen: ${JSON.stringify(dialogBox)}`)
    const deleteBox = await eraseConfirm.boundingBox()
    check(deleteBox && deleteBox.x + deleteBox.width <= 390, `Delete is whole on a phone: ${JSON.stringify(deleteBox)}`)
    await confirmField.fill(eraseId.slice(0, -1))
    check(await eraseConfirm.isDisabled(), 'Delete stays disabled while the id is not typed exactly')
    await confirmField.fill(eraseId)
    check(await eraseConfirm.isEnabled(), 'Delete is enabled once the id is typed exactly')
    await page.screenshot({ path: `${shots}/08-phone-events-forget-user.png` })
    await audit(page, "events, deleting a user's events, on a phone")
    const forgetAnswer = page.waitForResponse((r) => r.request().method() === 'DELETE' && new URL(r.url()).pathname.startsWith('/api/v1/users/'))
    await eraseConfirm.click()
    const forgot = await forgetAnswer
    check(new URL(forgot.url()).pathname === '/api/v1/users/erase%20me%2F1/events' && forgot.status() === 200, `DELETE ${forgot.url()}: ${forgot.status()}`)
    await page.getByTestId('forget-status').getByText(`Deleted 3 events of ${eraseId}.`).waitFor()
    await forgetDialog.waitFor({ state: 'hidden' })
    await page.getByTestId('empty-state').getByText('No events match the filters').waitFor()
    check((await eventRows.count()) === 0, 'the list of the user is empty after the deletion')
    check(await forgetButton.evaluate((b) => b === document.activeElement), 'after the deletion the focus is back on the button')
    await noPageScroll(page, "a user's events deleted, on a phone")
    await page.setViewportSize(viewport)
    await shot('02h-events-user-deleted')
    await audit(page, "events, a user's events deleted")
    // evp agrees: none of the user's events is left or counted; the other user's is.
    const leftOfUser = await getJSON(`/api/v1/events?timeRange=1h&userId=${encodeURIComponent(eraseId)}`, { key: apiKey })
    check(leftOfUser.events.length === 0, `evp lists no event of ${eraseId}: ${JSON.stringify(leftOfUser)}`)
    const eraseCounted = await getJSON('/api/v1/analytics/metrics?timeRange=1h&eventType=erase_check', { key: apiKey })
    check(eraseCounted.totalEvents === 1 && eraseCounted.topUsers.length === 1 && eraseCounted.topUsers[0].userId === 'erase_keep', `analytics count only the kept event: ${JSON.stringify(eraseCounted)}`)
    noProblems("deleting a user's events")
    step(`deleted the 3 events of "${eraseId}" from the Events page after typing the id (Escape cancelled first); the list is empty, evp lists and counts none, another user's event stays`)

    // 6. Dead letters, for real: evp's store refuses events of type "poison" (a trigger the Go
    // test put in events.db), so the workers dead-letter them after their retries.
    await nav.getByRole('link', { name: 'Dead letters' }).click()
    await page.getByRole('heading', { name: 'Dead letters', level: 1 }).waitFor()
    await page.getByTestId('empty-state').getByText('No dead letters').waitFor()
    const storedBefore = (await getJSON('/api/metrics', { key: apiKey })).processing.totalEvents
    const poison = [
      { eventId: 'e2e-poison-1', eventType: 'poison', userId: 'user_p1', sessionId: 'sess_p', timestamp: '2026-02-01T12:00:00.000Z', payload: { cart: 42, currency: 'EUR' } },
      { eventId: 'e2e-poison-2', eventType: 'poison', userId: 'user_p2', sessionId: 'sess_p', timestamp: '2026-02-01T12:05:00.000Z' },
    ]
    await postJSON('/api/v1/events/batch', { events: poison }, apiKey)
    await until('both poison events in the dead-letter queue', async () => (await getJSON('/api/v1/dead-letters', { token: admin })).total === 2)
    await page.reload()
    await page.getByRole('heading', { name: '2 dead letters' }).waitFor()
    await page.getByRole('button', { name: /e2e-poison-1/ }).click()
    const detail = page.locator('section').filter({ has: page.getByRole('heading', { name: 'Dead letter', exact: true }) })
    await detail.getByText('poisoned event refused').waitFor()
    const detailText = await detail.innerText()
    check(/Event id\s*e2e-poison-1/.test(detailText) && /Attempts\s*3/.test(detailText), `the letter's id and attempts: ${detailText}`)
    check(/"eventType": "poison"/.test(detailText) && /"userId": "user_p1"/.test(detailText) && /"cart": 42/.test(detailText), `the original event is shown: ${detailText}`)
    await shot('05-dead-letter-detail')
    await audit(page, 'dead letters, a letter open')
    step('an event the store refuses is dead-lettered; the page shows its error and the original event')

    // The cause is fixed; replay it from the UI: stored once, gone from the queue.
    const cured = await fetch(control + '/cure', { method: 'POST' })
    check(cured.status === 204, `dropping the poison trigger: ${cured.status}`)
    await detail.getByRole('button', { name: 'Replay', exact: true }).click()
    await page.getByRole('heading', { name: '1 dead letter', exact: true }).waitFor()
    check((await page.getByRole('button', { name: /e2e-poison-1/ }).count()) === 0, 'the replayed letter left the list')
    await until('the replayed event to be stored', async () => (await getJSON('/api/metrics', { key: apiKey })).processing.totalEvents === storedBefore + 1)
    const left = await getJSON('/api/v1/dead-letters', { token: admin })
    check(left.total === 1 && left.items[0].eventId === 'e2e-poison-2', `after the replay only e2e-poison-2 is left: ${JSON.stringify(left)}`)
    step('replayed a letter from the UI once the cause was fixed; evp stored it')

    // Delete the other: Cancel keeps it, confirming drops it.
    await page.getByRole('button', { name: /e2e-poison-2/ }).click()
    await detail.getByText('"userId": "user_p2"').waitFor()
    await detail.getByRole('button', { name: 'Delete', exact: true }).click()
    const confirmDelete = page.getByRole('dialog', { name: 'Delete this dead letter?' })
    await confirmDelete.getByText('dropped for good').waitFor()
    await audit(page, 'dead letters, delete confirmation')
    await confirmDelete.getByRole('button', { name: 'Cancel' }).click()
    await confirmDelete.waitFor({ state: 'hidden' })
    check((await getJSON('/api/v1/dead-letters', { token: admin })).total === 1, 'Cancel keeps the letter')
    await detail.getByRole('button', { name: 'Delete', exact: true }).click()
    await confirmDelete.getByRole('button', { name: 'Delete', exact: true }).click()
    await page.getByTestId('empty-state').getByText('No dead letters').waitFor()
    await shot('05b-dead-letters-empty')
    const empty = await getJSON('/api/v1/dead-letters', { token: admin })
    check(empty.total === 0 && empty.items.length === 0, `the dead-letter queue is empty: ${JSON.stringify(empty)}`)
    // Exactly once: the replayed event is stored one time, the deleted one never.
    await new Promise((r) => setTimeout(r, 500))
    check((await getJSON('/api/metrics', { key: apiKey })).processing.totalEvents === storedBefore + 1, 'one event stored by the replay, none by the delete')
    const poisoned = await getJSON('/api/v1/analytics/metrics?from=2026-02-01T11:00:00Z&to=2026-02-01T13:00:00Z&eventType=poison', { key: apiKey })
    check(poisoned.totalEvents === 1 && poisoned.topUsers.length === 1 && poisoned.topUsers[0].userId === 'user_p1', `poison events stored: ${JSON.stringify(poisoned)}`)
    noProblems('dead letters page')
    step('deleted the other letter after confirming (Cancel kept it); the queue is empty and the replayed event is stored exactly once')

    // A page whose code cannot be loaded (evp down, or upgraded since the tab opened)
    // offers a reload instead of the browser's message.
    expectFailures = true
    await page.route('**/assets/Users-*.js', (route) => route.abort())
    await nav.getByRole('link', { name: 'Users' }).click()
    const chunkError = page.getByTestId('error-state')
    await chunkError.getByText('This page could not be loaded').waitFor()
    check(!/dynamically imported module/.test(await chunkError.innerText()), `no raw import error: ${await chunkError.innerText()}`)
    await shot('06a-page-not-loaded')
    await audit(page, 'a page that could not be loaded')
    await page.unroute('**/assets/Users-*.js')
    await chunkError.getByRole('button', { name: 'Reload' }).click()
    expectFailures = false
    problems.length = 0 // the refused file and React's report of it
    step('a page whose code fails to load offers a reload, which loads it')

    // 7. Users: invite, change role, suspend (refused in another browser), reactivate.
    await page.getByRole('heading', { name: 'Users', level: 1 }).waitFor()
    await page.getByRole('cell', { name: `${email} you`, exact: true }).waitFor()
    const rowOf = (who) => page.getByRole('row').filter({ has: page.getByRole('cell', { name: who }) })
    const userNamed = async (who) => (await getJSON('/api/users', { token: admin })).find((u) => u.email === who)
    await page.getByLabel('Email', { exact: true }).fill('viewer@example.com')
    await page.getByLabel('Role', { exact: true }).selectOption('OPERATOR')
    await page.getByRole('button', { name: 'Invite' }).click()
    await rowOf('viewer@example.com').waitFor()
    await rowOf('viewer@example.com').getByLabel('Role of viewer@example.com').selectOption('VIEWER')
    await until('the role change to be saved', async () => (await userNamed('viewer@example.com'))?.role === 'VIEWER')
    invitedViewer = true

    const member = 'member@example.com'
    await page.getByLabel('Email', { exact: true }).fill(member)
    await page.getByLabel('Role', { exact: true }).selectOption('VIEWER')
    await page.getByRole('button', { name: 'Invite' }).click()
    await page.getByRole('status').getByText(`${member} can now sign in`).waitFor()
    const mrow = rowOf(member)
    await mrow.getByText('pending verification', { exact: true }).waitFor()
    await mrow.getByLabel(`Role of ${member}`).selectOption('OPERATOR')
    await until(`${member} to be an OPERATOR`, async () => (await userNamed(member))?.role === 'OPERATOR')
    step('invited two users and changed their roles')

    // The member signs in in a browser of their own: an OPERATOR's pages.
    const m = await newPage()
    await m.page.goto(base + '/')
    const codeA = await signIn(m.page, member)
    await m.page.getByRole('heading', { name: 'Analytics', level: 1 }).waitFor()
    const mnav = m.page.getByRole('navigation', { name: 'Main' })
    const mlinks = await mnav.getByRole('link').allTextContents()
    check(mlinks.join(',') === 'Analytics,Events,Live,API keys,Dead letters', `an OPERATOR's navigation: ${mlinks.join(', ')}`)
    const memberToken = await sessionToken(m.page)
    // ... and asks for a code on another device, not used yet.
    const other = await newPage()
    await other.page.goto(base + '/sign-in')
    await other.page.getByLabel('Email', { exact: true }).fill(member)
    await other.page.getByRole('button', { name: 'Send sign-in code' }).click()
    await other.page.getByLabel('6-digit code', { exact: true }).waitFor()
    const codeB = await codeFromLog(member, [codeA])

    // Suspend them, through the confirmation dialog.
    await mrow.getByRole('button', { name: `Suspend ${member}` }).click()
    const confirmSuspend = page.getByRole('dialog', { name: `Suspend ${member}?` })
    await confirmSuspend.getByText('cannot sign in until reactivated').waitFor()
    await confirmSuspend.getByRole('button', { name: 'Suspend', exact: true }).click()
    await mrow.getByText('suspended', { exact: true }).waitFor()
    await mrow.getByRole('button', { name: 'Reactivate' }).waitFor()
    await shot('06-users')
    await audit(page, 'users')
    step(`suspended ${member} after confirming`)

    // Their open session stops working: the next request sends them to sign-in.
    expectFailures = true
    const me = await fetch(base + '/api/auth/me', { headers: { Authorization: `Bearer ${memberToken}` } })
    check(me.status === 401, `the suspended member's session is refused: ${me.status}`)
    await mnav.getByRole('link', { name: 'Dead letters' }).click()
    await m.page.getByRole('heading', { name: 'Sign in to evp', level: 1 }).waitFor()
    await m.page.getByText('Your session has ended').waitFor()
    check((await m.page.evaluate(() => localStorage.getItem('evp.session'))) === null, 'the refused session is forgotten')
    // The code asked for before the suspension no longer signs them in.
    await other.page.getByLabel('6-digit code', { exact: true }).fill(codeB)
    await other.page.getByRole('button', { name: 'Sign in' }).click()
    const refusal = other.page.getByRole('alert')
    await refusal.waitFor()
    check(/suspended/i.test(await refusal.innerText()), `the sign-in refusal says why: ${await refusal.innerText()}`)
    check(new URL(other.page.url()).pathname === '/sign-in', `still on sign-in: ${other.page.url()}`)
    check((await other.page.evaluate(() => localStorage.getItem('evp.session'))) === null, 'no session for a suspended user')
    await other.page.screenshot({ path: `${shots}/07-suspended-sign-in.png`, fullPage: true })
    await audit(other.page, 'sign-in, refused')
    expectFailures = false
    problems.length = 0 // the expected 401 and 403 above
    step('the suspended member\'s open session ends at its next request, and their code is refused with the reason')

    // Reactivate: they can sign in again.
    await mrow.getByRole('button', { name: 'Reactivate' }).click()
    await mrow.getByText('active', { exact: true }).waitFor()
    // The page empties the code field when the new code's request succeeds: fill it after.
    const sent = other.page.waitForResponse((r) => r.url().endsWith('/api/auth/request-code'))
    await other.page.getByRole('button', { name: 'Send a new code' }).click()
    await sent
    await until('the new code request to settle', () => other.page.getByRole('button', { name: 'Send a new code' }).isEnabled())
    const codeC = await codeFromLog(member, [codeA, codeB])
    await other.page.getByLabel('6-digit code', { exact: true }).fill(codeC)
    await other.page.getByRole('button', { name: 'Sign in' }).click()
    await other.page.getByRole('heading', { name: 'Analytics', level: 1 }).waitFor()
    await m.context.close()
    await other.context.close()
    noProblems('users page and the member\'s browsers')
    step(`reactivated ${member}, who then signs in again`)
  }

  // 8. An API failure shows an error state that says what to do, and recovers.
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
  await audit(page, 'analytics, error state')
  await page.unroute('**/api/v1/analytics/metrics**')
  await err.getByRole('button', { name: 'Try again' }).click()
  await until('the error state to go after a retry', async () => (await page.getByTestId('error-state').count()) === 0, 40_000)
  expectFailures = false
  problems.length = 0 // the expected 500s above
  step('an API failure shows an error state with the reason; Try again recovers')

  // 9. Keyboard: the skip link and the navigation are reachable with Tab.
  await page.goto(base + '/live')
  await page.getByRole('heading', { name: 'Live', level: 1 }).waitFor()
  await page.keyboard.press('Tab')
  const focused = await page.evaluate(() => document.activeElement?.textContent)
  check(/Skip to content/.test(focused ?? ''), `first Tab focuses the skip link, got ${focused}`)
  await page.keyboard.press('Enter')
  check(await page.evaluate(() => document.activeElement?.id === 'main'), 'the skip link moves focus to the main content')
  step('keyboard: the first Tab reaches the skip link, which moves focus to the content')

  // 10. Phone width: the navigation folds behind a Menu button, and no page is wider than
  // the screen (tables become cards or scroll inside their panel).
  await page.setViewportSize({ width: 390, height: 844 })
  const menu = page.getByRole('button', { name: 'Menu' })
  await menu.waitFor()
  check(!(await nav.isVisible()), 'the navigation is folded on a phone')
  await shot('08-phone')
  await menu.click()
  await audit(page, 'phone, menu open')
  const phonePages = await nav.getByRole('link').allTextContents()
  for (const name of phonePages) {
    if (!(await nav.isVisible())) await menu.click()
    await nav.getByRole('link', { name }).click()
    await page.getByRole('heading', { name, level: 1 }).waitFor()
    await until(`${name} to finish loading`, async () => (await page.getByRole('status').filter({ hasText: /^Loading/ }).count()) === 0)
    await noPageScroll(page, `${name} on a phone`)
    await shot(`08-phone-${name.toLowerCase().replace(/ /g, '-')}`)
  }
  if (phonePages.includes('API keys')) {
    if (!(await nav.isVisible())) await menu.click()
    await nav.getByRole('link', { name: 'API keys' }).click()
    const revoke = page.getByRole('button', { name: 'Revoke e2e ingestion' })
    const box = await revoke.boundingBox()
    check(box && box.x >= 0 && box.x + box.width <= 390, `Revoke is whole on a phone: ${JSON.stringify(box)}`)
    await audit(page, 'API keys on a phone')
  }
  if (phonePages.includes('Events')) {
    // An event's panel takes the whole screen on a phone.
    if (!(await nav.isVisible())) await menu.click()
    await nav.getByRole('link', { name: 'Events' }).click()
    await page.getByTestId('events').locator('tbody tr').first().getByRole('button').click()
    const panel = page.getByRole('dialog', { name: 'Event' })
    await panel.getByTestId('event-json').waitFor()
    const box = await panel.boundingBox()
    check(box && box.x === 0 && Math.abs(box.width - 390) < 1 && Math.abs(box.height - 844) < 1, `the event's panel fills a phone's screen: ${JSON.stringify(box)}`)
    await noPageScroll(page, 'an event open on a phone')
    await page.screenshot({ path: `${shots}/08-phone-event.png` })
    await audit(page, 'an event open on a phone')
    await panel.getByRole('button', { name: 'Close' }).click()
    await panel.waitFor({ state: 'hidden' })
  }
  if (phonePages.includes('Users')) {
    if (!(await nav.isVisible())) await menu.click()
    await nav.getByRole('link', { name: 'Users' }).click()
    const suspend = page.getByRole('button', { name: 'Suspend viewer@example.com' })
    const box = await suspend.boundingBox()
    check(box && box.x >= 0 && box.x + box.width <= 390, `Suspend is whole on a phone: ${JSON.stringify(box)}`)
    await audit(page, 'users on a phone')
  }
  await page.setViewportSize({ width: 1366, height: 900 })
  step(`phone width: the Menu button opens the navigation; ${phonePages.join(', ')} fit the screen`)

  // The theme menu: Dark wins over the system's light preference and is remembered.
  await nav.getByRole('link', { name: 'Analytics' }).click()
  await page.getByTestId('stat-Total events').waitFor()
  const canvas = () => page.evaluate(() => getComputedStyle(document.body).backgroundColor)
  const lightCanvas = await canvas()
  // The chart paints with the theme's colours on a canvas: it must be drawn again.
  await page.locator('figure canvas').first().evaluate((c) => (c.dataset.drawnIn = 'light'))
  await page.getByLabel('Theme', { exact: true }).selectOption('dark')
  check(await page.evaluate(() => document.documentElement.dataset.theme === 'dark' && localStorage.getItem('evp.theme') === 'dark'), 'Dark is applied to <html> and remembered')
  check((await canvas()) !== lightCanvas, `the dark theme changes the page's colours: ${lightCanvas}`)
  await until('the chart to be drawn again in the dark theme', async () => (await page.locator('figure canvas').count()) > 0 && (await page.locator('figure canvas[data-drawn-in]').count()) === 0)
  await page.waitForTimeout(300) // colour transitions
  await shot('09-analytics-dark')
  await audit(page, 'analytics, Dark chosen in the theme menu', { themes: ['light'] })
  await page.getByLabel('Theme', { exact: true }).selectOption('system')
  check(await page.evaluate(() => !document.documentElement.dataset.theme && localStorage.getItem('evp.theme') === null), 'System follows the browser again')
  await page.goto(base + '/no-such-page')
  await page.getByText('No such page').waitFor()
  await audit(page, 'not found')
  await page.getByRole('link', { name: 'Go to Analytics' }).click()
  await page.getByRole('heading', { name: 'Analytics', level: 1 }).waitFor()
  step('the theme menu switches to Dark (the chart is redrawn in its colours) and back to System')

  // 11. Sign out.
  await page.getByRole('button', { name: 'Sign out' }).click()
  await page.getByRole('heading', { name: 'Sign in to evp', level: 1 }).waitFor()
  await page.setViewportSize({ width: 390, height: 844 })
  await noPageScroll(page, 'sign-in on a phone')
  await shot('08-phone-sign-in')
  await page.setViewportSize({ width: 1366, height: 900 })
  await page.goto(base + '/')
  await page.getByRole('heading', { name: 'Sign in to evp', level: 1 }).waitFor()
  await page.goto(base + '/no-such-page') // an unknown address asks for sign-in too
  await page.getByRole('heading', { name: 'Sign in to evp', level: 1 }).waitFor()
  await page.goto(base + '/') // signing in from here returns to /
  await page.getByRole('heading', { name: 'Sign in to evp', level: 1 }).waitFor()
  noProblems('sign out')
  step('signed out; the session is gone after a reload')

  if (withAuth && invitedViewer) {
    // 12. A VIEWER sees only Analytics, Events and Live; the server refuses the rest anyway.
    const viewer = 'viewer@example.com'
    await page.getByLabel('Email', { exact: true }).fill(viewer)
    await page.getByRole('button', { name: 'Send sign-in code' }).click()
    await page.getByLabel('6-digit code', { exact: true }).fill(await codeFromLog(viewer))
    await page.getByRole('button', { name: 'Sign in' }).click()
    await page.getByRole('heading', { name: 'Analytics', level: 1 }).waitFor()
    const links = await nav.getByRole('link').allTextContents()
    check(links.join(',') === 'Analytics,Events,Live', `a VIEWER's navigation: ${links.join(', ')}`)
    await page.goto(base + '/users')
    await page.getByRole('heading', { name: 'Analytics', level: 1 }).waitFor()
    const token = await page.evaluate(() => JSON.parse(localStorage.getItem('evp.session')).token)
    const refused = await fetch(base + '/api/users', { headers: { Authorization: `Bearer ${token}` } })
    check(refused.status === 403, `GET /api/users as a VIEWER: ${refused.status}, want 403`)
    // A VIEWER may read events.
    await nav.getByRole('link', { name: 'Events' }).click()
    await until('the events to be listed for a VIEWER', async () => (await page.getByTestId('events').locator('tbody tr').count()) > 0)
    await shot('10-viewer')
    noProblems('viewer session')
    step('a VIEWER sees Analytics, Events and Live only, and reads events; /users sends them to Analytics; evp answers 403')
  }

  await context.close()

  // 13. The accessibility audits' verdict (a11y.mjs), all at once so that one run lists them all.
  const a11y = findings()
  for (const n of a11y.notes) console.log(`e2e: axe, not failing: ${n}`)
  check(a11y.failing.length === 0, `axe-core found ${a11y.failing.length} violation(s) (colour contrast, or serious or critical):\n${a11y.failing.join('\n')}`)
  check(a11y.disabledChecked > 0, 'the audits measured disabled buttons (the sign-in page has one)')
  step(`accessibility: ${a11y.audits} axe-core audits (WCAG 2.1 A and AA) of every page in the light and dark themes, and ${a11y.disabledChecked} disabled buttons measured: no colour-contrast, serious or critical violations`)
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
