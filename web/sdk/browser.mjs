// Opens PAGE_URL in Chromium (CHROMIUM, default /usr/bin/chromium) with playwright-core,
// clicks its button, and waits until the page sets window.__done; then prints every URL the
// page requested, one a line, so that the caller can check that none left for another
// host. Exits 1 when the page does not finish within 20 s. Run by internal/app's SDK test.
import { chromium } from 'playwright-core'

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox'],
})
try {
  const page = await browser.newPage()
  const urls = []
  page.on('request', (req) => urls.push(req.url()))
  page.on('console', (msg) => console.error('page:', msg.text()))
  page.on('response', async (res) => {
    if (res.status() >= 400) {
      const req = res.request()
      console.error(`answer ${res.status()} to ${req.method()} ${req.url()} (${req.headers()['content-type'] ?? 'no content type'}): ${await res.text()}`)
    }
  })
  await page.goto(process.env.PAGE_URL)
  await page.getByRole('button', { name: 'Buy' }).click()
  await page.waitForFunction(() => window.__done === true, null, { timeout: 20000 })
  await page.waitForTimeout(500) // requests the page's last call started
  console.log(urls.join('\n'))
} finally {
  await browser.close()
}
